package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runShipper runs s until the test ends or stop is called (idempotent; waits for Run).
func runShipper(t *testing.T, s *Shipper) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("shipper: %v", err)
		}
	}()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// pairShipper is site "a"'s Shipper over p (no sequence alignment, quiet), not yet running.
func pairShipper(p *capPair, conns int, opTimeout time.Duration) *Shipper {
	return NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: conns,
		OpTimeout: opTimeout, SequenceInterval: -1, Logger: quietLogger()})
}

// installPair installs Tandem for site "a" on p and writes the term record (1, a, synced).
func installPair(t *testing.T, p *capPair) {
	t.Helper()
	ctx := capCtx(t, 30*time.Second)
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.ldb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.pdb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
}

// syncedShipper installs Tandem for site "a" on p and runs a Shipper of term 1 (one peer
// connection, no sequence shipping) whose peer a first catch-up made synced.
func syncedShipper(t *testing.T, p *capPair) *Shipper {
	t.Helper()
	installPair(t, p)
	sh := pairShipper(p, 1, 3*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 60*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	return sh
}

func (s *Shipper) linkState() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.link
}

// bankWriters run transfers through the shim until halted; a transaction holds gate (read) for
// its whole length, so that taking gate for writing holds new commits and waits for those in
// flight — the hold CatchUp asks for.
type bankWriters struct {
	gate    sync.RWMutex
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	commits atomic.Int64
	mu      sync.Mutex
	errs    []error
}

func startBankWriters(t *testing.T, s *testShim, n, accounts int) *bankWriters {
	t.Helper()
	w := &bankWriters{stop: make(chan struct{})}
	for i := 0; i < n; i++ {
		conn := s.connect(t)
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				a, b := rand.IntN(accounts)+1, rand.IntN(accounts)+1
				if a == b {
					continue
				}
				a, b = min(a, b), max(a, b) // one lock order: no deadlocks
				d := rand.IntN(10) + 1
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				w.gate.RLock()
				err := func() error {
					tx, err := conn.Begin(ctx)
					if err != nil {
						return err
					}
					defer tx.Rollback(ctx)
					for _, q := range []string{
						fmt.Sprintf("UPDATE acct SET balance = balance - %d WHERE id = %d", d, a),
						fmt.Sprintf("UPDATE acct SET balance = balance + %d WHERE id = %d", d, b),
						fmt.Sprintf("INSERT INTO moves (acct, delta) VALUES (%d, %d)", a, d),
						fmt.Sprintf("INSERT INTO notes VALUES (%d, 'moved %d')", b, d),
					} {
						if _, err := tx.Exec(ctx, q); err != nil {
							return err
						}
					}
					return tx.Commit(ctx)
				}()
				w.gate.RUnlock()
				cancel()
				if err != nil {
					w.mu.Lock()
					w.errs = append(w.errs, err)
					w.mu.Unlock()
					time.Sleep(10 * time.Millisecond)
					continue
				}
				w.commits.Add(1)
				time.Sleep(5 * time.Millisecond) // a steady load, below what catch-up ships
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

// gateHold is the hold CatchUp and Resync ask for, for a shim with bank writers (*w, once
// started): it stops them at their gate and, on release, switches the shim to dual when the
// peer is synced. held, when not nil, is told the span of each hold.
func gateHold(sh *Shipper, shim *testShim, w **bankWriters, held func(from, to time.Time)) func(context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		gate := *w
		if gate != nil {
			gate.gate.Lock()
		}
		from := time.Now()
		return func() {
			if held != nil {
				held(from, time.Now())
			}
			if sh.PeerSynced() {
				shim.SetMode(ModeDual, 1)
			}
			if gate != nil {
				gate.gate.Unlock()
			}
		}, nil
	}
}

// startShipPair starts a pair of clusters holding stmts' objects, installed for site "a" at
// term 1, a running Shipper (cfg may adjust its configuration) and a shim in solo mode over the
// local database (opts gets Peer, Site and Logger filled in).
func startShipPair(t *testing.T, cfg func(*ShipperConfig), opts Options, stmts ...string) (*capPair, *Shipper, *testShim) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, stmts...)
	installPair(t, p)
	logger := quietLogger()
	c := ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: logger}
	if cfg != nil {
		cfg(&c)
	}
	sh := NewShipper(c)
	sh.SetTerm(1)
	runShipper(t, sh)
	opts.Peer, opts.Site, opts.Logger = sh, "a", logger
	return p, sh, startShim(t, p.local, opts, ModeSolo, 1)
}

func (w *bankWriters) halt() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

func (w *bankWriters) errors() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...)
}

func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCatchUpAfterPeerKilled: a dual shim loses its peer (killed) and keeps committing alone;
// the journal stays within its bound; the peer comes back and CatchUp — with the writers still
// running, then held for the tail — brings it in step; dual commits resume and both databases
// end identical with nothing left prepared.
func TestCatchUpAfterPeerKilled(t *testing.T) {
	t.Parallel()
	const accounts = 20
	const bound = 16 << 10
	var downs atomic.Int64
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) { c.MaxJournalBytes, c.VerifyCatchUp = bound, true },
		Options{OnPeerDown: func() bool { downs.Add(1); return true }},
		`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO acct SELECT g, 1000 FROM generate_series(1, %d) g`, accounts),
		`CREATE TABLE moves (id serial PRIMARY KEY, acct int, delta int, at timestamptz DEFAULT now())`,
		`CREATE TABLE notes (a int, b text)`) // no key: a transaction applied twice would show

	var w *bankWriters
	var held atomic.Int64
	hold := gateHold(sh, shim, &w, func(time.Time, time.Time) { held.Add(1) })
	// The lead's start as master: catch up (nothing to ship), then dual.
	if err := sh.CatchUp(capCtx(t, 20*time.Second), hold); err != nil {
		t.Fatalf("first CatchUp: %v", err)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the first CatchUp: mode %v, synced %v", m, sh.PeerSynced())
	}

	w = startBankWriters(t, shim, 3, accounts)
	waitForLong(t, "dual commits", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= 30 })

	p.peer.Kill()
	waitForLong(t, "the shim to go solo", 20*time.Second, func() bool { m, _ := shim.Mode(); return m == ModeSolo })
	solo0 := shim.Stats().CommitsSolo
	waitForLong(t, "solo commits", 30*time.Second, func() bool { return shim.Stats().CommitsSolo >= solo0+150 })
	if sh.PeerSynced() {
		t.Error("PeerSynced with the peer killed")
	}
	if n := downs.Load(); n != 1 {
		t.Errorf("OnPeerDown called %d times, want 1", n)
	}
	waitForLong(t, "the backlog to count the solo commits", 20*time.Second, func() bool { return sh.Backlog() >= 150 })
	sh.mu.Lock()
	heldBytes, gap, dropped := sh.held, sh.gap, sh.stats.Dropped
	sh.mu.Unlock()
	if heldBytes > 2*bound || !gap || dropped == 0 {
		t.Errorf("journal holds %d bytes (bound %d), gap %v, dropped %d: want it bounded, with dropped transactions", heldBytes, bound, gap, dropped)
	}
	if errs := w.errors(); len(errs) > 0 {
		t.Fatalf("clients saw %d errors while the peer died; first: %v", len(errs), errs[0])
	}
	t.Logf("peer down: backlog %d, journal %d bytes, dropped %d", sh.Backlog(), heldBytes, dropped)

	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	// A row written behind Tandem's back on the peer: catch-up does not meet it, the
	// verification after it does (it reports: a difference may be a write that bypassed the
	// shim, on its way to the peer).
	p.peer.Exec(t, `INSERT INTO notes VALUES (-1, 'stray')`)
	// The writers go on while CatchUp ships the backlog; it holds them for the tail. On a
	// loaded machine (CI with other packages' clusters) the rounds before the hold took over 40 s.
	start := time.Now()
	if err := sh.CatchUp(capCtx(t, 90*time.Second), hold); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	st := sh.Stats()
	t.Logf("caught up in %v: %+v", time.Since(start), st)
	if !sh.PeerSynced() || held.Load() != 2 {
		t.Fatalf("after CatchUp: synced %v, hold called %d times", sh.PeerSynced(), held.Load())
	}
	if m, _ := shim.Mode(); m != ModeDual {
		t.Fatalf("mode after CatchUp %v", m)
	}
	if st.Restarts == 0 || st.Shipped < 150 {
		t.Errorf("stats %+v: want the slot streamed again (restarts) and the solo commits shipped", st)
	}
	// The databases as they were when catch-up held the writers, compared while they went on:
	// identical but for the stray row.
	var vr VerifyReport
	waitForLong(t, "the verification after catch-up", 20*time.Second, func() bool {
		r, ok := sh.LastVerify()
		vr = r
		return ok && r.At.After(start)
	})
	if vr.Err != nil || len(vr.Diffs) != 1 || !strings.HasPrefix(vr.Diffs[0], "table public.notes has") || !strings.Contains(vr.Diffs[0], "on the peer") {
		t.Errorf("verification after catch-up: %q, %v; want notes' stray row only", vr.Diffs, vr.Err)
	}
	p.peer.Exec(t, `DELETE FROM notes WHERE a = -1`)
	dual0 := shim.Stats().CommitsDual
	waitForLong(t, "dual commits after catch-up", 20*time.Second, func() bool { return shim.Stats().CommitsDual >= dual0+30 })
	w.halt()
	if errs := w.errors(); len(errs) > 0 {
		t.Fatalf("clients saw %d errors; first: %v", len(errs), errs[0])
	}
	waitForLong(t, "nothing left for the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	requireSame(t, p)
	if sum := queryOne[int](t, p.pdb, `SELECT sum(balance) FROM acct`); sum != 1000*accounts {
		t.Errorf("peer balance total %d, want %d", sum, 1000*accounts)
	}
	if got, want := queryOne[int](t, p.pdb, `SELECT count(*) FROM moves`), int(w.commits.Load()); got != want {
		t.Errorf("peer has %d moves, clients committed %d", got, want)
	}
	// Again: the peer is synced, nothing to do, the shim stays dual.
	if err := sh.CatchUp(capCtx(t, 10*time.Second), hold); err != nil || !sh.PeerSynced() {
		t.Fatalf("second CatchUp: %v (synced %v)", err, sh.PeerSynced())
	}
	if m, _ := shim.Mode(); m != ModeDual || held.Load() != 2 {
		t.Errorf("second CatchUp of a synced peer: mode %v, hold called %d times", m, held.Load())
	}
}

// TestCatchUpCrashMidway: a catch-up stops after shipping some transactions but before the slot
// learns it (a crash); a new Shipper streams the slot again and the decision rows keep the
// peer from applying anything twice.
func TestCatchUpCrashMidway(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE notes (a int, b text)`, `CREATE TABLE moves (id serial PRIMARY KEY, delta int)`)
	installPair(t, p)
	cfg := ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: quietLogger()}
	sh1 := NewShipper(cfg)
	sh1.SetTerm(1)
	stop1 := runShipper(t, sh1)

	p.peer.Kill()
	const n = 40
	for i := 1; i <= n; i++ {
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO notes VALUES (%d, 'plain'); INSERT INTO moves (delta) VALUES (%d)`, i, i))
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh1.Backlog() == n && sh1.linkState() == linkDown })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}

	const crashAt = 15
	errCrash := errors.New("crash")
	sh1.hooks.catchUp.set(func(shipped int) error {
		if shipped == crashAt {
			return errCrash
		}
		return nil
	})
	err := sh1.CatchUp(capCtx(t, 20*time.Second), nil)
	if !errors.Is(err, errCrash) {
		t.Fatalf("CatchUp = %v, want the crash", err)
	}
	if sh1.PeerSynced() {
		t.Fatal("synced after a crashed catch-up")
	}
	stop1()
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM notes`); got != crashAt {
		t.Fatalf("peer has %d notes after the crash, want %d", got, crashAt)
	}

	sh2 := NewShipper(cfg)
	sh2.SetTerm(1)
	runShipper(t, sh2)
	for i := 0; ; i++ {
		err := sh2.CatchUp(capCtx(t, 20*time.Second), nil)
		if err == nil {
			break
		}
		// The first Shipper's sessions may still hold the slot or a replication origin for a moment.
		if i == 3 || errors.Is(err, ErrNeedsResync) {
			t.Fatalf("CatchUp after the crash: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !sh2.PeerSynced() || sh2.Backlog() != 0 {
		t.Fatalf("after CatchUp: synced %v, backlog %d", sh2.PeerSynced(), sh2.Backlog())
	}
	requireSame(t, p)
	st := sh2.Stats()
	if st.Skipped < 1 || st.Shipped+st.Skipped > n || st.Shipped < n-crashAt {
		t.Errorf("stats after the rerun %+v: want ≥1 skipped and %d..%d shipped+skipped", st, n-crashAt, n)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(DISTINCT gid) FROM tandem.decisions WHERE gid LIKE 'tandem_a_plain_%'`); got != n {
		t.Errorf("%d plain decision rows on the peer, want %d", got, n)
	}
	// Running it twice changes nothing.
	if err := sh2.CatchUp(capCtx(t, 10*time.Second), nil); err != nil || !sh2.PeerSynced() {
		t.Fatalf("second CatchUp: %v", err)
	}
	requireSame(t, p)
}

// TestCatchUpNeedsResync: a transaction the peer refuses (it diverged) ends catch-up with
// ErrNeedsResync, now and on every later try.
func TestCatchUpNeedsResync(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	sh := pairShipper(p, 1, 3*time.Second)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	p.pdb.Exec(`DELETE FROM kv WHERE k = 1`) // the peer diverges
	p.local.Exec(t, `UPDATE kv SET v = 'uno' WHERE k = 1`)
	waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })
	for i := 0; i < 2; i++ {
		err := sh.CatchUp(capCtx(t, 10*time.Second), nil)
		if !errors.Is(err, ErrNeedsResync) || !strings.Contains(err.Error(), "divergence") {
			t.Fatalf("CatchUp = %v, want ErrNeedsResync", err)
		}
	}
	if sh.PeerSynced() || sh.Backlog() != 1 {
		t.Errorf("synced %v, backlog %d: want not synced, the refused transaction kept", sh.PeerSynced(), sh.Backlog())
	}
}

// dualAcct is a pair with table acct, a Shipper and a shim of site a, term 1, in dual mode
// after a first CatchUp, and one client that has made one dual commit (account 1 - 1).
type dualAcct struct {
	p    *capPair
	sh   *Shipper
	shim *testShim
	hold func(ctx context.Context) (func(), error) // CatchUp's hold: dual once the peer is synced
	ctx  context.Context
	conn *pgx.Conn
}

// catchUpToDual runs the first CatchUp of sh, whose shim starts solo, and returns the hold it
// used: it holds the shim's commits and switches the shim to dual (in its current term) once
// the peer is synced.
func catchUpToDual(t *testing.T, sh *Shipper, shim *testShim) func(context.Context) (func(), error) {
	t.Helper()
	hold := func(ctx context.Context) (func(), error) {
		release, err := shim.HoldCommits(ctx)
		if err != nil {
			return nil, err
		}
		return func() {
			if sh.PeerSynced() {
				_, term := shim.Mode()
				shim.SwitchMode(ModeSolo, ModeDual, term)
			}
			release()
		}, nil
	}
	if err := sh.CatchUp(capCtx(t, 20*time.Second), hold); err != nil {
		t.Fatal(err)
	}
	return hold
}

// startDualAcct starts a dualAcct with accounts 1..accounts at 100; opts gets Peer, Site and
// Logger filled in.
func startDualAcct(t *testing.T, opts Options, accounts int) dualAcct {
	t.Helper()
	p, sh, shim := startShipPair(t, nil, opts, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`,
		fmt.Sprintf(`INSERT INTO acct SELECT g, 100 FROM generate_series(1, %d) g`, accounts))
	hold := catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	if _, err := conn.Exec(ctx, "UPDATE acct SET balance = balance - 1 WHERE id = 1"); err != nil {
		t.Fatalf("dual commit: %v", err)
	}
	return dualAcct{p: p, sh: sh, shim: shim, hold: hold, ctx: ctx, conn: conn}
}

// TestPeerFrozenMidTransaction: the peer database stops answering (paused: connections stay
// open and silent, as with a hung host) while a client's transaction is open. Its COMMIT
// returns within the commit timeout — committed alone — and so does the next one; once the
// peer answers again CatchUp brings it in step, nothing is left prepared, and both databases
// end identical.
func TestPeerFrozenMidTransaction(t *testing.T) {
	t.Parallel()
	d := startDualAcct(t, Options{}, 2)
	p, sh, shim, hold, ctx, conn := d.p, d.sh, d.shim, d.hold, d.ctx, d.conn
	if st := shim.Stats(); st.CommitsDual != 1 {
		t.Fatalf("before the freeze: %+v, want one dual commit", st)
	}

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "UPDATE acct SET balance = balance + 5 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	if err := p.peer.Pause(); err != nil {
		t.Fatal(err)
	}
	defer p.peer.Resume()
	limit := 5*time.Second + 3*time.Second // the shim's commit_timeout, and slack for a loaded machine
	start := time.Now()
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit with the peer frozen: %v", err)
	}
	if d := time.Since(start); d > limit {
		t.Errorf("commit with the peer frozen took %v, want within %v", d, limit)
	}
	t.Logf("commit with the peer frozen: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if _, err := conn.Exec(ctx, "UPDATE acct SET balance = balance + 7 WHERE id = 2"); err != nil {
		t.Fatalf("next commit: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the next commit took %v: solo should not wait for the peer", d)
	}
	if m, _ := shim.Mode(); m != ModeSolo || sh.PeerSynced() {
		t.Errorf("mode %v, synced %v with the peer frozen: want solo, not synced", m, sh.PeerSynced())
	}

	if err := p.peer.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 40*time.Second), hold); err != nil {
		t.Fatalf("CatchUp after the thaw: %v", err)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Errorf("after CatchUp: mode %v, synced %v", m, sh.PeerSynced())
	}
	waitForLong(t, "nothing prepared on either side", 20*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	requireSame(t, p)
	if got := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 2`); got != 112 {
		t.Errorf("peer balance of account 2: %d, want 112", got)
	}
}

// TestRefusedSoloThenCatchUp: a master whose going solo was not acknowledged (OnPeerDown says
// no) leaves the commit in doubt and stays dual; once the peer is back, a resolver pass settles
// the commit on both, catch-up brings the peer in step, and commits are dual again, with both
// databases identical and nothing prepared.
func TestRefusedSoloThenCatchUp(t *testing.T) {
	t.Parallel()
	var refusals atomic.Int64
	d := startDualAcct(t, Options{OnPeerDown: func() bool { refusals.Add(1); return false }}, 1)
	p, sh, shim, hold, ctx, conn := d.p, d.sh, d.shim, d.hold, d.ctx, d.conn
	p.peer.Kill()
	if _, err := conn.Exec(ctx, "UPDATE acct SET balance = balance - 10 WHERE id = 1"); pgCode(err) != "08007" {
		t.Fatalf("commit with the peer gone and going solo refused: %v, want 08007", err)
	}
	if m, _ := shim.Mode(); m != ModeDual || refusals.Load() == 0 || shim.WentSolo(1) {
		t.Fatalf("mode %v, refusals %d, went solo %v: want dual, refused, no", m, refusals.Load(), shim.WentSolo(1))
	}

	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	res := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger(), InFlight: shim.InFlight})
	if rep, err := res.ResolveOnce(ctx); err != nil || len(rep.RolledBack) != 1 {
		t.Fatalf("resolver pass: %+v, %v; want the commit in doubt rolled back (the peer never had it)", rep, err)
	}
	if err := sh.CatchUp(ctx, hold); err != nil || !sh.PeerSynced() {
		t.Fatalf("CatchUp after the peer came back: %v (synced %v)", err, sh.PeerSynced())
	}
	dual := shim.Stats().CommitsDual
	if _, err := conn.Exec(ctx, "UPDATE acct SET balance = balance - 100 WHERE id = 1"); err != nil {
		t.Fatalf("commit after catch-up: %v", err)
	}
	if m, _ := shim.Mode(); m != ModeDual || shim.Stats().CommitsDual != dual+1 {
		t.Fatalf("mode %v, dual commits %d → %d: want one more dual commit", m, dual, shim.Stats().CommitsDual)
	}
	waitForLong(t, "nothing left for the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
			queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	requireSame(t, p)
	if b := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`); b != -1 {
		t.Errorf("peer balance %d, want -1 (100 - 1 - 100: the commit in doubt rolled back)", b)
	}
}

// TestCatchUpTailUnwrappedWrite: a write the shim took for a read (a function created behind
// its back), committed in an explicit transaction in solo mode while catch-up holds commits for
// the tail. Its client must not hear COMMIT while the peer lacks it and the hold ends with the
// peer marked synced (DESIGN §5.5: peer_synced = true only once the peer holds every commit a
// client saw). It passed no gate and committed under the hold, its reply waiting; now it
// asks whether it wrote before its COMMIT and is held as any write, committed (on both
// databases) once the hold ends.
func TestCatchUpTailUnwrappedWrite(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{FuncRefresh: time.Hour}, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	waitForLong(t, "the shim's catalog", 20*time.Second, func() bool {
		if _, err := conn.Exec(ctx, "SELECT count(*) FROM t WHERE id = abs(-1)"); err != nil {
			t.Fatal(err)
		}
		return !shim.Catalog().ReadAt.IsZero()
	})
	// Behind the shim's back: it reads SELECT w(…) as a read until it reads its catalog again.
	// On the peer too, straight: the databases' definitions stay alike (requireSame compares
	// functions), and the shim knows of neither.
	for _, c := range []*pgtest.Cluster{p.local, p.peer} {
		c.Exec(t, `CREATE FUNCTION w(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO t VALUES (i) RETURNING i'`)
	}

	var tail, fired, replied atomic.Bool
	done := make(chan error, 1)
	var lockTx *sql.Tx
	sh.hooks.catchUp.set(func(int) error {
		if !tail.Load() || fired.Swap(true) {
			return nil
		}
		// The peer takes no insert into t for now: what is shipped after the tail waits.
		var err error
		if lockTx, err = p.pdb.BeginTx(ctx, nil); err != nil {
			return err
		}
		if _, err := lockTx.ExecContext(ctx, "LOCK TABLE t IN SHARE MODE"); err != nil {
			return err
		}
		go func() {
			_, err := conn.Exec(ctx, "BEGIN; SELECT w(100); COMMIT")
			replied.Store(err == nil)
			done <- err
		}()
		select { // its reply, if it comes without waiting
		case err := <-done:
			done <- err
		case <-time.After(time.Second):
		}
		if queryOne[int](t, p.ldb, `SELECT count(*) FROM t WHERE id = 100`) != 0 {
			t.Error("a write the shim took for a read committed under catch-up's hold")
		}
		return nil
	})

	hold := func(ctx context.Context) (func(), error) {
		release, err := shim.HoldCommits(ctx)
		if err != nil {
			return nil, err
		}
		// A write that bypasses the shim (and the hold) gives the tail something to ship.
		p.local.Exec(t, `INSERT INTO t VALUES (50)`)
		tail.Store(true)
		return func() {
			if sh.PeerSynced() && replied.Load() && queryOne[int](t, p.pdb, `SELECT count(*) FROM t WHERE id = 100`) == 0 {
				t.Error("the peer is marked synced while it lacks a write whose client heard COMMIT")
			}
			if sh.PeerSynced() {
				shim.SwitchMode(ModeSolo, ModeDual, 1)
			}
			release()
			if lockTx != nil {
				lockTx.Rollback()
			}
		}, nil
	}
	if err := sh.CatchUp(ctx, hold); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if !fired.Load() {
		t.Fatal("nothing was shipped after the hold")
	}
	if err := <-done; err != nil {
		t.Fatalf("the write: %v", err)
	}
	waitForLong(t, "the peer to have every row", 20*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM t`) == 2
	})
	requireSame(t, p)
}

// TestCatchUpAfterRepromotion: a master that was in step with its peer hands over and later
// becomes master again, solo at first (its promotion's resolver pass could not reach the peer
// database). Its next catch-up must bring the peer in step with what it committed alone before
// the peer counts as synced — not take the Shipper's word from its earlier term.
func TestCatchUpAfterRepromotion(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	// Master of term 1, in step with the peer.
	hold := catchUpToDual(t, sh, shim)
	if !sh.PeerSynced() {
		t.Fatal("first CatchUp: the peer is not synced")
	}
	conn := shim.connect(t)
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the dual commit on the peer", 20*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM t`) == 1 && queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})

	// It hands over, and becomes master of term 2 without reaching the peer: solo.
	shim.SetMode(ModeReadOnly, 1)
	sh.SetBackup(true)
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if err := WriteTermRecord(ctx, db, 2, "a", false); err != nil {
			t.Fatal(err)
		}
	}
	sh.SetTerm(2)
	sh.SetBackup(false)
	shim.SetMode(ModeSolo, 2)

	// For a moment the peer takes no insert into t; meanwhile a solo commit.
	lockTx, err := p.pdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lockTx.Rollback()
	if _, err := lockTx.ExecContext(ctx, "LOCK TABLE t IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	unlocked := make(chan struct{})
	go func() {
		defer close(unlocked)
		time.Sleep(time.Second)
		lockTx.Rollback()
	}()
	defer func() { <-unlocked }()
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(ctx, hold); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if sh.PeerSynced() && queryOne[int](t, p.pdb, `SELECT count(*) FROM t WHERE id = 2`) == 0 {
		t.Error("CatchUp left the peer marked synced while it lacks a solo commit its client saw")
	}
	waitForLong(t, "the peer to have every row", 20*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM t`) == 2
	})
	requireSame(t, p)
}

// TestCatchUpAsyncCommit: a solo commit made with synchronous_commit = off (a client's
// setting) is visible, and its client told COMMIT, before its WAL is written. Catch-up ships
// the tail up to a WAL position read with commits held, and the peer is synced once it has
// everything before it: taken at the WAL's write position, that left out such a commit, and
// the peer was marked synced without a transaction a client saw committed (lost by a
// failover right after).
func TestCatchUpAsyncCommit(t *testing.T) {
	t.Parallel()
	// The WAL writer flushes an asynchronous commit within wal_writer_delay: long enough for
	// the catch-up below to end before it.
	p := startCapPair(t, pgtest.WithSetting("wal_writer_delay", "10000ms"))
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	ctx := capCtx(t, 60*time.Second)
	sh.goDown("test: the peer was unreachable", nil) // the shim commits alone meanwhile
	conn, err := p.ldb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{`SET synchronous_commit = off`, `INSERT INTO kv VALUES (1, 'async')`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(ctx context.Context) (func(), error) { return func() {}, nil }
	if err := sh.CatchUp(ctx, hold); err != nil || !sh.PeerSynced() {
		t.Fatalf("CatchUp: %v (synced %v)", err, sh.PeerSynced())
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1`); n != 1 {
		t.Fatalf("the peer is synced without the asynchronous commit (%d rows with k = 1)", n)
	}
	requireSame(t, p)
}

// TestCatchUpSyncStandbyDown: catch-up writes the local WAL up to the moment it reads (a
// commit of its own, currentWAL) and must not wait for a synchronous standby of the local
// database that is down: the master's solo commits do not either when their sessions commit
// with synchronous_commit = local, and catch-up would never end.
func TestCatchUpSyncStandbyDown(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	ctx := capCtx(t, 60*time.Second)
	sh.goDown("test: the peer was unreachable", nil)
	for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = 'gone'`, `SELECT pg_reload_conf()`} {
		if _, err := p.ldb.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		p.ldb.Exec(`ALTER SYSTEM RESET synchronous_standby_names`)
		p.ldb.Exec(`SELECT pg_reload_conf()`)
	})
	conn, err := p.ldb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{`SET synchronous_commit = local`, `INSERT INTO kv VALUES (1, 'solo')`} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := sh.CatchUp(cctx, nil); err != nil {
		t.Fatalf("CatchUp with the local database's synchronous standby down: %v", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1`); n != 1 {
		t.Fatalf("the peer is synced without the solo commit (%d rows)", n)
	}
}

// TestCatchUpOutpacedByWrites: catch-up ships one transaction at a time, while many sessions
// commit alone at once. When they commit faster than it ships, every round of the drain is
// larger than the one before; holding commits only after catchUpRounds rounds made catch-up
// last for ever (and the final hold the longest). It now holds them after the first round that
// leaves a backlog no smaller than it shipped.
func TestCatchUpOutpacedByWrites(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE notes (id serial PRIMARY KEY, v int)`)
	installPair(t, p)
	sh := pairShipper(p, 2, 3*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)

	p.peer.Kill()
	const backlog = 120 // above catchUpHoldBelow: the first round alone does not end the drain
	for i := 1; i <= backlog; i++ {
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO notes (v) VALUES (%d)`, i))
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == backlog && sh.linkState() == linkDown })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}

	// Shipping is slowed to at most 100 transactions a second; a writer commits faster (a
	// commit, then 5 ms) until the hold stops it.
	sh.hooks.catchUp.set(func(int) error { time.Sleep(10 * time.Millisecond); return nil })
	var mu sync.Mutex // held by the writer around each commit, and by the hold
	var written atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			_, err := p.ldb.Exec(`INSERT INTO notes (v) VALUES (0)`)
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			written.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stopWriter := sync.OnceFunc(func() { close(stop); <-writerDone })
	defer stopWriter()
	var held atomic.Int64
	hold := func(context.Context) (func(), error) {
		mu.Lock()
		held.Store(written.Load())
		return mu.Unlock, nil
	}
	start := time.Now()
	if err := sh.CatchUp(capCtx(t, 40*time.Second), hold); err != nil {
		t.Fatalf("CatchUp with commits outpacing it: %v (after %s, %d written meanwhile)", err, time.Since(start).Round(time.Millisecond), written.Load())
	}
	t.Logf("caught up in %s; %d commits before the hold, %d in all", time.Since(start).Round(time.Millisecond), held.Load(), written.Load())
	if !sh.PeerSynced() {
		t.Fatal("CatchUp returned nil without the peer synced")
	}
	stopWriter()
	sh.hooks.catchUp.clear()
	// What the writer committed after the hold ships online (plainLoop). Backlog counts what the
	// decoder has read: a commit it has not read yet (the writer's last, made as CatchUp
	// returned) is not in it, so the rows are counted too.
	waitForLong(t, "the writes after the catch-up shipped", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM notes`) == queryOne[int](t, p.pdb, `SELECT count(*) FROM notes`)
	})
	requireSame(t, p)
}

// TestCatchUpShipsRuns: catch-up ships small plain commits in runs, several in one peer
// transaction (applyRun), in stream order: the peer holds the same rows, each transaction its
// own decision row, with far fewer peer transactions than shipped ones. A transaction too large
// for a run goes alone between runs.
func TestCatchUpShipsRuns(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE notes (id int PRIMARY KEY, v int)`)
	installPair(t, p)
	sh := pairShipper(p, 2, 5*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)

	p.peer.Kill()
	const n = 300
	for i := 1; i <= n; i++ {
		q := fmt.Sprintf(`INSERT INTO notes VALUES (%d, %d)`, i, i)
		switch {
		case i%7 == 0:
			// Later in a run than the insert it changes: order within a run holds.
			q = fmt.Sprintf(`UPDATE notes SET v = -v WHERE id = %d`, i-3)
		case i == 100:
			q = fmt.Sprintf(`INSERT INTO notes SELECT g, 0 FROM generate_series(1000, %d) g`, 1000+runMaxChanges)
		}
		p.local.Exec(t, q)
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == n && sh.linkState() == linkDown })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 60*time.Second), nil); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if !sh.PeerSynced() || sh.Backlog() != 0 {
		t.Fatalf("after CatchUp: synced %v, backlog %d", sh.PeerSynced(), sh.Backlog())
	}
	requireSame(t, p)
	if st := sh.Stats(); st.Shipped != n {
		t.Errorf("stats %+v: want %d shipped", st, n)
	}
	var rows, txns int
	if err := p.pdb.QueryRow(`SELECT count(*), count(DISTINCT xmin::text) FROM tandem.decisions WHERE gid LIKE 'tandem_a_plain_%'`).Scan(&rows, &txns); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d transactions shipped in %d peer transactions", rows, txns)
	if rows != n || txns > n/10 {
		t.Errorf("%d decision rows in %d peer transactions; want %d rows, in runs (at most %d transactions)", rows, txns, n, n/10)
	}
}

// TestWaitShippedTimeoutTakesShipperDown: a plain commit whose reply waited in vain for the peer
// to take it (WaitShipped out of the commit's time: here the peer's table is locked) makes the
// shim commit alone (awaitShipped); the Shipper must then be down and not synced, so that the
// catch-up that switches the shim back to dual holds commits and ships what the peer lacks
// first. Still online and synced, its next CatchUp returned at once, and peer_synced = true
// went out while the peer lacked commits whose clients had been told COMMIT.
func TestWaitShippedTimeoutTakesShipperDown(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	// The ship's own time (OpTimeout) outlasts the commit's wait, as a large transaction's
	// size allowance does.
	s := pairShipper(p, 1, 30*time.Second)
	s.SetTerm(1)
	runShipper(t, s)
	if err := s.CatchUp(capCtx(t, 60*time.Second), nil); err != nil || !s.PeerSynced() {
		t.Fatalf("first catch-up: %v, synced %v", err, s.PeerSynced())
	}

	// The lock holder is counted among the shipper's apply sessions (ownPIDs), which the
	// apply's watchdog never ends as blockers (terminateBlockers): a wait for the peer that
	// outlasts blockerGrace (a plain commit queued when the wait's time is up waits on) would
	// otherwise see the lock go.
	blocker, err := p.pdb.BeginTx(capCtx(t, time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	var bpid uint32
	if err := blocker.QueryRow(`SELECT pg_backend_pid()`).Scan(&bpid); err != nil {
		t.Fatal(err)
	}
	s.own.add(bpid)
	if _, err := blocker.Exec(`LOCK TABLE kv IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	xid := queryOne[string](t, p.ldb, `INSERT INTO kv VALUES (1, 'a') RETURNING pg_current_xact_id()::text`) // plain
	markText := queryOne[string](t, p.ldb, `SELECT pg_logical_emit_message(true, 'tandem', '')::text`)
	mark, err := pglogrepl.ParseLSN(markText)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := strconv.ParseUint(xid, 10, 64)
	err = s.WaitShipped(capCtx(t, time.Second), uint32(x), mark)
	if err == nil {
		t.Fatal("the plain commit was shipped to a locked table")
	}
	if s.PeerSynced() || s.linkState() == linkOnline {
		t.Fatalf("after a wait for the peer in vain (%v): synced %v, link %s — want down, so that catch-up ships the commit before dual",
			err, s.PeerSynced(), linkName(s.linkState()))
	}

	if err := blocker.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := s.CatchUp(capCtx(t, 60*time.Second), nil); err != nil || !s.PeerSynced() {
		t.Fatalf("catch-up after the lock went: %v, synced %v", err, s.PeerSynced())
	}
	if v := queryOne[string](t, p.pdb, `SELECT v FROM kv WHERE k = 1`); v != "a" {
		t.Fatalf("the peer holds %q for row 1, want the plain commit's 'a'", v)
	}
}

// TestCatchUpHoldBounded: commits held for a catch-up's tail wait a bounded time. A client's
// open transaction that altered a sequence keeps it locked, and its COMMIT waits at the hold;
// the tail's read of the sequences waits for that lock. Each waited for the other — and every
// write commit on the master with them — until the client went away. Now the tail gives up
// after catchUpTailMax, the commits go on alone, and the next catch-up makes the shim dual.
func TestCatchUpHoldBounded(t *testing.T) {
	// Not parallel: sets catchUpTailMax.
	defer func(d time.Duration) { catchUpTailMax = d }(catchUpTailMax)
	catchUpTailMax = 2 * time.Second
	_, sh, shim := startShipPair(t, nil, Options{}, `CREATE SEQUENCE sq`)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	if _, err := conn.Exec(ctx, "BEGIN; ALTER SEQUENCE sq RESTART WITH 100"); err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	hold := func(ctx context.Context) (func(), error) {
		release, err := shim.HoldCommits(ctx)
		if err != nil {
			return nil, err
		}
		go func() { _, err := conn.Exec(ctx, "COMMIT"); committed <- err }()
		return func() {
			if sh.PeerSynced() {
				shim.SwitchMode(ModeSolo, ModeDual, 1)
			}
			release()
		}, nil
	}
	start := time.Now()
	err := sh.CatchUp(capCtx(t, 20*time.Second), hold)
	took := time.Since(start)
	t.Logf("catch-up with a held client holding a sequence's lock: %v after %v", err, took.Round(time.Millisecond))
	if err == nil || took > 10*time.Second {
		t.Fatalf("catch-up: %v after %v, want it to give up within catchUpTailMax (2 s) and some", err, took)
	}
	select {
	case err := <-committed:
		if err != nil {
			t.Fatalf("the held client's COMMIT: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held client's COMMIT still waits 10 s after the catch-up gave up")
	}
	catchUpToDual(t, sh, shim)
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the next catch-up: mode %v, synced %v, want dual and synced", m, sh.PeerSynced())
	}
}
