package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestLocalAsyncCommitPlainMark: a dual-mode commit the shim makes plainly (here, a WITH HOLD
// cursor) waits for the peer to have it, up to a mark written after it in the stream — and
// the mark's commit took the session's synchronous_commit. Under a local default of off
// (ALTER DATABASE … SET, for the applications' speed) the decoder, which reads only WAL on
// disk, saw neither until the WAL writer wrote them out, a wal_writer_delay later: each such
// commit waited that long (up to 10 s, past the commit's time, which sent the site on alone).
// The mark's commit is written out at once.
func TestLocalAsyncCommitPlainMark(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	catchUpToDual(t, sh, shim)
	p.local.Exec(t, `ALTER DATABASE app SET synchronous_commit = off`)
	p.local.Exec(t, `ALTER SYSTEM SET wal_writer_delay = '10s'`)
	p.local.Exec(t, `SELECT pg_reload_conf()`)
	conn := shim.connect(t) // a session of the new default
	ctx := capCtx(t, 60*time.Second)
	// The WAL writer's first round after the reload may come at any moment: the second
	// commit comes right after one.
	for i := range 2 {
		start := time.Now()
		if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; INSERT INTO kv VALUES (%d, 'x'); DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT; CLOSE c", i),
			pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("plain commit %d took %v", i, took)
		}
		if m, _ := shim.Mode(); m != ModeDual {
			t.Fatalf("after plain commit %d: mode %v, want dual", i, m)
		}
	}
	waitFor(t, "the peer to have every commit", func() bool { return sh.Backlog() == 0 })
	requireSame(t, p)
}
