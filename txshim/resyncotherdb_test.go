package txshim

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"
)

// otherDatabasePair starts a pair with a table kv on both sides and its shipper synced, and a
// database "other" on the local server (another application's, with a table hits), open.
func otherDatabasePair(t *testing.T) (*capPair, *sql.DB, *Shipper) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	p.local.Exec(t, `CREATE DATABASE other`)
	other := p.local.Open(t, "other")
	if _, err := other.Exec(`CREATE TABLE hits (n int)`); err != nil {
		t.Fatal(err)
	}
	return p, other, syncedShipper(t, p)
}

// TestResyncOtherDatabaseSyncRep: Resync takes its snapshot again while a commit that may lie
// before its WAL position waits for a synchronous standby (TestResyncCommitInSnapshotWindow) —
// but one of another database of the local server is in neither the copy nor the stream, whatever
// it waits for. Counted all the same, a commit of another application's database waiting for a
// standby that is down (its sessions commit with synchronous_commit = on, the shim's with local)
// made every resync fail after resyncWindowWait.
func TestResyncOtherDatabaseSyncRep(t *testing.T) {
	t.Parallel()
	p, other, sh := otherDatabasePair(t)
	ctx := capCtx(t, 90*time.Second)
	for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = 'gone'`, `SELECT pg_reload_conf()`} {
		if _, err := p.ldb.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		p.ldb.Exec(`ALTER SYSTEM RESET synchronous_standby_names`)
		p.ldb.Exec(`SELECT pg_reload_conf()`)
	})
	// Another application's commits, on the same server, waiting for the standby. Again and
	// again until they wait: pg_reload_conf() returns before the checkpointer has told the
	// backends that a standby is now required, and a commit before that does not wait (1 run
	// in 6 under load: "timed out waiting for a commit of the other database …").
	loopCtx, stopLoop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stopLoop(); wg.Wait() })
	for range 2 {
		wg.Go(func() {
			for loopCtx.Err() == nil {
				other.ExecContext(loopCtx, `INSERT INTO hits VALUES (1)`)
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	waitFor(t, "a commit of the other database waiting for the standby", func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_stat_activity WHERE datname = 'other' AND wait_event = 'SyncRep'`) > 0
	})
	start := time.Now()
	if err := sh.Resync(ctx, nil); err != nil {
		t.Fatalf("Resync after %v: %v", time.Since(start).Round(time.Second), err)
	}
	requireSame(t, p)
}
