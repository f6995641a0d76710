package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestResyncForeignPrepared: a transaction a session outside the shim prepared on the local
// database under a gid of its own ships as Tandem's do, its changes sent at its PREPARE. One
// prepared when the copy takes its snapshot and committed after it is in neither the copy nor
// what the new stream sends from the copy's position (its COMMIT PREPARED alone): lost on the
// peer, which was called synced. Resync refuses until it is settled.
func TestResyncForeignPrepared(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	prepareLocal(t, p.ldb, "app_1", `INSERT INTO kv VALUES (1, 'one')`)
	p.local.Exec(t, `COMMIT PREPARED 'app_1'`)
	waitFor(t, "the first commit on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`) == 1 && sh.Backlog() == 0
	})
	requireSame(t, p)

	prepareLocal(t, p.ldb, "app_2", `INSERT INTO kv VALUES (2, 'two')`)
	err := sh.Resync(capCtx(t, 30*time.Second), nil)
	if err != nil && !strings.Contains(err.Error(), "'app_2'") {
		t.Fatalf("Resync with app_2 prepared locally = %v, want a refusal naming it", err)
	}
	p.local.Exec(t, `COMMIT PREPARED 'app_2'`)
	if err != nil {
		if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
			t.Fatalf("Resync once app_2 is settled: %v", err)
		}
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'three')`)
	waitFor(t, "the last commit on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 3`) == 1 && sh.Backlog() == 0
	})
	requireSame(t, p)
}
