package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestResyncPeerForeignPrepared: a transaction prepared on the peer's database under a gid that
// is not Tandem's holds its locks as a tandem_ one does, and the resolver never settles it: the
// copy's TRUNCATE waited for it without end (the apply session has no lock timeout, and the
// watchdog spares prepared transactions), tandem resync hanging with no word of why. Committed
// after the copy, it would also put its changes on top of it. Resync refuses, naming it, as it
// does one prepared so on the local database.
func TestResyncPeerForeignPrepared(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	sh := syncedShipper(t, p)
	prepareLocal(t, p.pdb, "app_peer_1", `UPDATE kv SET v = 'peer' WHERE k = 1`)
	start := time.Now()
	err := sh.Resync(capCtx(t, 15*time.Second), nil)
	if err == nil || !strings.Contains(err.Error(), "'app_peer_1'") {
		t.Fatalf("Resync with app_peer_1 prepared on the peer = %v (after %v), want a refusal naming it", err, time.Since(start).Round(time.Millisecond))
	}
	p.peer.Exec(t, `ROLLBACK PREPARED 'app_peer_1'`)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync once app_peer_1 is settled: %v", err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'two')`)
	waitFor(t, "the last commit on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 2`) == 1 && sh.Backlog() == 0
	})
	requireSame(t, p)
}
