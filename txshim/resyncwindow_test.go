package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
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
	inserted, setSync := commitWaitingForStandby(t, ctx, p, nil)

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
	requireShippedAfterResync(t, p, sh)
}

// TestResyncCommitEndedBeforeLooks: the commit waiting for a synchronous standby of the
// local database, unseen by the copy's snapshot, ended (the standby answered) after the
// snapshot and before commitsUnseen looked. Its look for ended commits left out the xids of
// the other databases' transactions with "<> ALL" over an array holding NULLs (the
// backend_xid of every session with none: the server's background processes always), which is
// never true: it counted none, ever, and the commit was lost on the peer — in neither the copy
// nor what is shipped after L (CI's clean-clone run ci198, in
// TestResyncCommitInSnapshotWindow). A wait before the looks (lookGap) holds them back here
// while the standby answers.
func TestResyncCommitEndedBeforeLooks(t *testing.T) {
	t.Parallel()
	resyncStandbyAnswersAt(t, 0)
}

// TestResyncStandbyAnswersBetweenLooks: the commit waiting for a synchronous standby of the
// local database, unseen by the copy's snapshot, ended (the standby answered) between the
// looks of commitsUnseen — after the one for ended commits found it in progress, before the
// one for waiting commits, which found it no longer waiting. Counted by neither, it was lost on
// the peer. The two are in one statement, an instant apart, but a standby answers at any
// instant, and a loaded machine stretches it. A wait after the first look (lookGap) holds the
// others back here while the standby answers.
func TestResyncStandbyAnswersBetweenLooks(t *testing.T) {
	t.Parallel()
	resyncStandbyAnswersAt(t, 1)
}

// resyncStandbyAnswersAt runs a Resync while a commit waits for a synchronous standby of the
// local database, the standby answering while commitsUnseen's statement waits right before
// its look (lookGap); it requires the databases alike afterwards.
func resyncStandbyAnswersAt(t *testing.T, look int) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	ctx := capCtx(t, 90*time.Second)
	inserted, setSync := commitWaitingForStandby(t, ctx, p, nil)

	// The look waits before it for an advisory lock this session holds.
	const key = 7340021
	unlock := holdAdvisoryLock(t, ctx, p.ldb, key)
	sh.hooks.lookGap.set(func(i int) string {
		if i != look {
			return ""
		}
		return fmt.Sprintf(`(SELECT 0 FROM pg_advisory_xact_lock(%d))`, key)
	})
	t.Cleanup(sh.hooks.lookGap.clear)

	resynced := make(chan error, 1)
	go func() {
		resynced <- sh.Resync(ctx, func(context.Context) (func(), error) { return func() {}, nil })
	}()
	waitForLong(t, "Resync's look waiting", 30*time.Second, func() bool {
		select {
		case err := <-resynced:
			t.Fatalf("Resync ended before its look waited: %v", err)
		default:
		}
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, key) == 1
	})
	setSync("") // the standby answers
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-resynced; err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireShippedAfterResync(t, p, sh)
}

// commitWaitingForStandby makes the local database of p wait for a synchronous standby it
// does not have, and starts an insert into kv that waits for it (written, not yet visible); it
// returns the insert's outcome and what sets synchronous_standby_names ("": none, which lets
// the insert end). The inserts run in session on when it is not nil, else in any of p.ldb's.
func commitWaitingForStandby(t *testing.T, ctx context.Context, p *capPair, on *sql.Conn) (inserted chan error, setSync func(string)) {
	t.Helper()
	var ins interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	} = p.ldb
	if on != nil {
		ins = on
	}
	setSync = func(v string) {
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
	for k, deadline := 1, time.Now().Add(30*time.Second); ; k++ {
		inserted = make(chan error, 1)
		go func() {
			_, err := ins.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 'window')`, k)
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
			return inserted, setSync
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a commit to wait for the synchronous standby")
		}
	}
}

// requireShippedAfterResync commits on p's local database after a Resync of sh, waits for it
// on the peer, and requires the two databases alike.
func requireShippedAfterResync(t *testing.T, p *capPair, sh *Shipper) {
	t.Helper()
	p.local.Exec(t, `INSERT INTO kv VALUES (1000, 'after')`)
	waitForLong(t, "the later commit on the peer, or a refusal", 30*time.Second, func() bool {
		return sh.Err() != nil || (queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1000`) == 1 && sh.Backlog() == 0)
	})
	if err := sh.Err(); err != nil {
		t.Fatalf("after Resync: %v", err)
	}
	requireSame(t, p)
}

// TestResyncLastLookSeesWaitersNow: commitsUnseen looks for commits waiting for a synchronous
// standby before and after the one for ended commits, so that one that began waiting after the
// first look is counted by the last. PostgreSQL keeps the list of sessions a transaction read
// in pg_stat_activity for the rest of it, but reads each one's wait event anew (from its
// PGPROC), and a commit before L is one of a session listed already: the last look sees it
// waiting now. Here a commit begins waiting while the statement waits before its last look
// (lookGap); that look must count it (without the last look: 0). The commit's session is
// open before the statement begins, as a commit before L's is: one a pool opened after the
// first look is in no list the statement reads, and it counted 0 (CI's clean-clone run ci204).
func TestResyncLastLookSeesWaitersNow(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	ctx := capCtx(t, 60*time.Second)
	committer, err := p.ldb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { committer.Close() })
	const key = 7340022
	unlock := holdAdvisoryLock(t, ctx, p.ldb, key)
	var w unseenWindow
	var until string
	if err := p.ldb.QueryRowContext(ctx, `SELECT pg_current_snapshot()::text, pg_snapshot_xmax(pg_current_snapshot())::text, pg_current_wal_lsn()::text`).
		Scan(&w.snap, &w.bound, &until); err != nil {
		t.Fatal(err)
	}
	w.others = "{}"
	at, err := pglogrepl.ParseLSN(until)
	if err != nil {
		t.Fatal(err)
	}
	counted := make(chan int, 1)
	go func() {
		n, err := commitsUnseen(ctx, p.ldb, w, at, func(look int) string {
			if look != 2 {
				return ""
			}
			return fmt.Sprintf(`(SELECT 0 FROM pg_advisory_xact_lock(%d))`, key)
		})
		if err != nil {
			t.Error(err)
		}
		counted <- n
	}()
	waitForLong(t, "the last look waiting", 30*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`, key) == 1
	})
	inserted, setSync := commitWaitingForStandby(t, ctx, p, committer)
	unlock()
	n := <-counted
	setSync("")
	if err := <-inserted; err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("commitsUnseen counted %d commits, want 1: the one waiting for the standby at its last look", n)
	}
}

// holdAdvisoryLock takes the advisory lock key in a session of db of its own and returns what
// releases it (once; at the test's end at the latest).
func holdAdvisoryLock(t *testing.T, ctx context.Context, db *sql.DB, key int64) (unlock func()) {
	t.Helper()
	held, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.Close() })
	if _, err := held.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			if _, err := held.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(unlock)
	return unlock
}
