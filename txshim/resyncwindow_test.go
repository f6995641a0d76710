package txshim

import (
	"context"
	"testing"
	"time"
)

// TestResyncCommitInSnapshotWindow: a commit whose WAL record lies before the position L that
// Resync reads with its snapshot, yet which that snapshot does not see, was in neither the
// copy nor what is shipped after L: lost on the peer. The hold does not stop every commit (a
// write the lexer took for a read, a session outside the shim), and such a commit may be in that
// window for long: one waiting for a synchronous standby of the local database has written
// its commit record but is not visible until the standby answers. Resync now finds it (an xid
// its snapshot does not see, committed) and takes its snapshot again once it is visible.
func TestResyncCommitInSnapshotWindow(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	ctx := capCtx(t, 90*time.Second)
	setSync := func(v string) {
		for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = ` + sqlLiteral(v), `SELECT pg_reload_conf()`} {
			if _, err := p.ldb.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	setSync("gone")
	t.Cleanup(func() {
		p.ldb.Exec(`ALTER SYSTEM RESET synchronous_standby_names`)
		p.ldb.Exec(`SELECT pg_reload_conf()`)
	})
	// The reload reaches the backends (and the checkpointer, which tells them a standby is
	// wanted) in their own time: a commit that did not wait for the standby is one the snapshot
	// sees; try again with the next key until one waits.
	var inserted chan error
	for k, deadline := 1, time.Now().Add(30*time.Second); ; k++ {
		inserted = make(chan error, 1)
		go func() {
			_, err := p.ldb.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 'window')`, k)
			inserted <- err
		}()
		waiting := false
		for !waiting && time.Now().Before(deadline) {
			select {
			case err := <-inserted:
				if err != nil {
					t.Fatal(err)
				}
				inserted = nil
			case <-time.After(20 * time.Millisecond):
			}
			if inserted == nil {
				break
			}
			waiting = queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`) == 1
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a commit to wait for the synchronous standby")
		}
	}

	resynced := make(chan error, 1)
	go func() {
		resynced <- sh.Resync(ctx, func(context.Context) (func(), error) { return func() {}, nil })
	}()
	time.Sleep(2 * time.Second) // Resync takes its snapshot meanwhile
	setSync("")
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	if err := <-resynced; err != nil {
		t.Fatalf("Resync: %v", err)
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (1000, 'after')`)
	waitForLong(t, "the later commit on the peer, or a refusal", 30*time.Second, func() bool {
		return sh.Err() != nil || (queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1000`) == 1 && sh.Backlog() == 0)
	})
	if err := sh.Err(); err != nil {
		t.Fatalf("after Resync: %v", err)
	}
	requireSame(t, p)
}
