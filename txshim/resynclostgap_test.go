package txshim

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestResyncLostSlotCommitHeldBeforeVisible: Resync made the lost slot anew, and then took the
// copy's snapshot and its WAL position L as for a slot in place, skipping what the new slot
// streams up to L. A commit made between the two whose record lies before L, yet whose
// backend has not made it visible when the snapshot is taken (PostgreSQL writes and flushes the
// commit record, marks it in pg_xact, waits for a synchronous standby if one is wanted, and only
// then leaves the list of transactions in progress: ProcArrayEndTransaction), was in neither
// the copy nor the stream after L: lost on the peer. commitsUnseen finds such a commit only
// while it waits for a synchronous standby or once it has ended. A debugger holds the
// committing backend right before it becomes visible. The copy now reads in the snapshot the
// slot's creation exports, which sees exactly the commits before the slot's first position.
func TestResyncLostSlotCommitHeldBeforeVisible(t *testing.T) {
	t.Parallel()
	gdb := needGDB(t)
	p, sh, _ := shippingKV(t)
	dropSlot(t, p)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	ctx := capCtx(t, 90*time.Second)

	// The hook only stops Resync; the test's own goroutine holds the commit meanwhile: a
	// t.Fatal or t.Skip in the hook, on Resync's goroutine, ended that goroutine alone, and the
	// test then waited for Resync without end (gdb unable to attach, say).
	goOn, resynced, err := resyncHeldAtSlotRemade(t, ctx, sh)
	held := holdCommitAt(t, ctx, gdb, p.ldb, "ProcArrayEndTransaction", 50)
	goOn()
	select {
	case <-resynced:
	case <-time.After(5 * time.Second):
		held.release()
		<-resynced
	}
	held.release()
	if *err != nil {
		t.Fatalf("Resync: %v", *err)
	}
	if err := <-held.committed; err != nil {
		t.Fatal(err)
	}
	requireShippedAfterResync(t, p, sh)
	if !queryOne[bool](t, p.ldb, `SELECT two_phase FROM pg_replication_slots WHERE slot_name = $1`, SlotName("a")) {
		t.Fatal("the slot made anew is not two-phase")
	}
}

// resyncHeldAtSlotRemade starts sh.Resync and returns once it has made the slot anew, held
// there until goOn is called; resynced is closed when Resync has returned, *err then its error.
func resyncHeldAtSlotRemade(t *testing.T, ctx context.Context, sh *Shipper) (goOn func(), resynced chan struct{}, err *error) {
	t.Helper()
	remade, proceed := make(chan struct{}), make(chan struct{})
	goOn = sync.OnceFunc(func() { close(proceed) })
	sh.hooks.slotRemade.set(func() { close(remade); <-proceed })
	t.Cleanup(sh.hooks.slotRemade.clear)
	err = new(error)
	resynced = make(chan struct{})
	go func() { defer close(resynced); *err = sh.Resync(ctx, nil) }()
	t.Cleanup(func() { goOn(); <-resynced })
	select {
	case <-remade:
	case <-resynced:
		t.Fatalf("Resync did not make the slot anew: %v", *err)
	}
	return goOn, resynced, err
}

// needGDB returns gdb's path, or skips the test.
func needGDB(t *testing.T) string {
	t.Helper()
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb not found")
	}
	return gdb
}

// heldCommit is a commit on the local database whose backend gdb holds (holdCommitAt).
type heldCommit struct {
	release   func()     // lets the backend go on (once; again: nothing)
	committed chan error // the COMMIT's outcome
}

// holdCommitAt inserts key k into kv on a connection of db and commits, with gdb holding the
// backend at the entry of the server function fn (one the commit calls past its commit record:
// ProcArrayEndTransaction, SyncRepWaitForLSN); it returns once the backend is held there.
// Cleanup releases it.
func holdCommitAt(t *testing.T, ctx context.Context, gdb string, db *sql.DB, fn string, k int) *heldCommit {
	t.Helper()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var pid int
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`BEGIN`, fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'held')`, k)} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	h := &heldCommit{committed: make(chan error, 1)}
	wait, release := gdbAt(t, gdb, pid, fn)
	h.release = release
	go func() {
		_, err := conn.ExecContext(ctx, `COMMIT`)
		h.committed <- err
	}()
	wait()
	if n := queryOne[int](t, db, `SELECT count(*) FROM kv WHERE k = $1`, k); n != 0 {
		t.Fatalf("the held commit is visible already")
	}
	return h
}

// gdbAt attaches gdb to the server process pid, with a breakpoint at the entry of the server
// function fn, and lets the process run on; wait returns once it is held there. release lets it
// go (once; again: nothing); cleanup releases it too. A gdb not allowed to attach skips the test.
func gdbAt(t *testing.T, gdb string, pid int, fn string) (wait, release func()) {
	t.Helper()
	cmd := exec.Command(gdb, "-q", "-nx", "-p", fmt.Sprint(pid),
		"-ex", "set pagination off", "-ex", "set confirm off", "-ex", "break "+fn, "-ex", "continue")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	done := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); done <- err }()
	released, stopped := false, false
	release = func() {
		if released {
			return
		}
		released = true
		if !stopped {
			// gdb reads no command while the backend runs on to the breakpoint: stop it first,
			// or gdb is killed below with the breakpoint left in the backend, which then dies
			// of SIGTRAP when it gets there.
			cmd.Process.Signal(os.Interrupt)
		}
		io.WriteString(stdin, "delete\ndetach\nquit\n")
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(release)
	waitLine := func(what string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("gdb ended before saying %q", what)
				}
				if strings.Contains(l, what) {
					return
				}
				// Not allowed to trace the server's backend (kernel.yama.ptrace_scope, no
				// CAP_SYS_PTRACE): as without gdb.
				if strings.Contains(l, "ptrace: Operation not permitted") || strings.Contains(l, "Could not attach to process") {
					t.Skipf("gdb cannot attach to the backend: %s", l)
				}
			case <-timeout:
				t.Fatalf("timed out waiting for gdb to say %q", what)
			}
		}
	}
	waitLine("Continuing.")
	return func() { t.Helper(); waitLine("Breakpoint 1,"); stopped = true }, release
}

// TestResyncLostSlotPreparedAcrossItsStart: the copy of a resync that made the lost slot anew
// reads in the snapshot of the new slot's first position, which does not see a transaction
// prepared before that position and committed after it; the slot, two-phase, must stream it
// whole at its COMMIT PREPARED (PostgreSQL does so for one prepared before the position it
// decodes two-phase transactions from), or it is in neither the copy nor the stream. Made so:
// the slot's creation waits for one open transaction and then for another begun meanwhile,
// and a third begun after the first ended is prepared before the second ends (the slot's
// first position) and committed right after the creation, before the copy's snapshot.
func TestResyncLostSlotPreparedAcrossItsStart(t *testing.T) {
	t.Parallel()
	p, sh, _ := shippingKV(t)
	ctx := capCtx(t, 90*time.Second)
	if err := resyncPreparedAcross(t, ctx, p, sh); err != nil {
		// Streamed at its COMMIT PREPARED, the transaction the copy lacks is told: the peer
		// needs another copy, and gets it.
		if !errors.Is(err, ErrNeedsResync) || !strings.Contains(err.Error(), "app_across") {
			t.Fatalf("Resync = %v, want nil or ErrNeedsResync naming app_across", err)
		}
		if err := sh.Resync(ctx, nil); err != nil {
			t.Fatalf("Resync again: %v", err)
		}
	}
	requireShippedAfterResync(t, p, sh)
}

// TestResyncLostSlotPreparedAcrossRestart: the transaction prepared across the new slot's first
// position, which the copy lacks, was found (copyWatch) once the copy had committed on the peer,
// deleting the row that says it is owed one (owedGID), with the slot confirmed past it: the
// Shipper alone knew the peer needs resync, and after a restart its catch-up shipped on from the
// copy's position and called the peer synced without the transaction.
func TestResyncLostSlotPreparedAcrossRestart(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)
	ctx := capCtx(t, 90*time.Second)
	err := resyncPreparedAcross(t, ctx, p, sh)
	if err == nil {
		t.Skip("PostgreSQL streamed the transaction prepared across the slot's start whole: nothing lacking")
	}
	if !errors.Is(err, ErrNeedsResync) || !strings.Contains(err.Error(), "app_across") {
		t.Fatalf("Resync = %v, want ErrNeedsResync naming app_across", err)
	}
	stop()
	sh = pairShipper(p, 1, 2*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(ctx, nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp after a restart = %v, want ErrNeedsResync: the peer lacks app_across (%d rows on the peer, %d on the local database)",
			err, queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`), queryOne[int](t, p.ldb, `SELECT count(*) FROM kv`))
	}
	if err := sh.Resync(ctx, nil); err != nil {
		t.Fatalf("Resync after a restart: %v", err)
	}
	requireShippedAfterResync(t, p, sh)
}

// resyncPreparedAcross drops the slot of sh (shippingKV) and runs Resync, which makes it anew,
// with a transaction (app_across, key 62) prepared before the new slot's first position and
// committed right after the creation, before the copy's snapshot. Made so: the slot's creation
// waits for one open transaction and then for another begun meanwhile, and the one prepared
// after the first ended is prepared before the second ends (the slot's first position).
func resyncPreparedAcross(t *testing.T, ctx context.Context, p *capPair, sh *Shipper) error {
	t.Helper()
	return startResyncPreparedAcross(t, ctx, p, sh, true)()
}

// startResyncPreparedAcross is resyncPreparedAcross, returning once the slot is made anew a
// function that waits for Resync's outcome; without commitInHook, app_across is left prepared
// for the caller to commit.
func startResyncPreparedAcross(t *testing.T, ctx context.Context, p *capPair, sh *Shipper, commitInHook bool) (wait func() error) {
	t.Helper()
	dropSlot(t, p)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	open := func(k int) (*sql.Conn, string) {
		c, err := p.ldb.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		var xid string
		if _, err := c.ExecContext(ctx, `BEGIN`); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRowContext(ctx, `INSERT INTO kv VALUES ($1, 'open') RETURNING pg_current_xact_id()::text`, k).Scan(&xid); err != nil {
			t.Fatal(err)
		}
		return c, xid
	}
	creationWaitsFor := func(xid string) {
		waitForLong(t, "the slot's creation waiting for transaction "+xid, 30*time.Second, func() bool {
			return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE a.backend_type = 'walsender' AND l.locktype = 'transactionid' AND NOT l.granted AND l.transactionid::text = $1`, xid) == 1
		})
	}
	commit := func(c *sql.Conn) {
		if _, err := c.ExecContext(ctx, `COMMIT`); err != nil {
			t.Fatal(err)
		}
	}
	first, fx := open(60)
	var hookErr error
	if commitInHook {
		sh.hooks.slotRemade.set(func() { _, hookErr = p.ldb.ExecContext(ctx, `COMMIT PREPARED 'app_across'`) })
		t.Cleanup(sh.hooks.slotRemade.clear)
	}
	resynced := make(chan error, 1)
	go func() { resynced <- sh.Resync(ctx, nil) }()
	creationWaitsFor(fx)
	second, sx := open(61)
	commit(first)
	creationWaitsFor(sx)
	prepareLocal(t, p.ldb, "app_across", `INSERT INTO kv VALUES (62, 'prepared across')`)
	commit(second)
	return func() error {
		t.Helper()
		err := <-resynced
		if hookErr != nil {
			t.Fatalf("COMMIT PREPARED right after the slot was made: %v", hookErr)
		}
		return err
	}
}

// TestResyncLostSlotCommitPreparedDuringImport: the copy's position (the end of what copyWatch
// looks at) was read in the statement that then refuses a transaction still prepared, before
// it looks: one committed between the two was not refused, and its COMMIT PREPARED, past that
// position, was not watched, though neither the copy (the snapshot of the slot's first
// position) nor the stream (but for its COMMIT PREPARED) had it. gdb holds the copy's backend
// as that statement starts to read pg_prepared_xacts.
func TestResyncLostSlotCommitPreparedDuringImport(t *testing.T) {
	t.Parallel()
	gdb := needGDB(t)
	p, sh, _ := shippingKV(t)
	ctx := capCtx(t, 90*time.Second)
	pids, proceed := make(chan uint32, 1), make(chan struct{})
	goOn := sync.OnceFunc(func() { close(proceed) })
	sh.hooks.snapshotConn.set(func(pid uint32) { pids <- pid; <-proceed })
	t.Cleanup(sh.hooks.snapshotConn.clear)
	t.Cleanup(goOn)
	wait := startResyncPreparedAcross(t, ctx, p, sh, false)
	var pid uint32
	select {
	case pid = <-pids:
	case <-time.After(30 * time.Second):
		goOn()
		t.Fatalf("Resync did not come to import the snapshot: %v", wait())
	}
	held, release := gdbAt(t, gdb, int(pid), "pg_prepared_xact")
	goOn()
	held()
	if _, err := p.ldb.ExecContext(ctx, `COMMIT PREPARED 'app_across'`); err != nil {
		t.Fatal(err)
	}
	release()
	if err := wait(); err != nil {
		if !errors.Is(err, ErrNeedsResync) || !strings.Contains(err.Error(), "app_across") {
			t.Fatalf("Resync = %v, want nil or ErrNeedsResync naming app_across", err)
		}
		if err := sh.Resync(ctx, nil); err != nil {
			t.Fatalf("Resync again: %v", err)
		}
	}
	requireShippedAfterResync(t, p, sh)
}
