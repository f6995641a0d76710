package txshim

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// sameTermSites runs the two sites of one pair of databases as a split brain leaves them:
// site a's shim and Shipper (database A = p.local, its peer B = p.peer) and site b's (B, its
// peer A), both dual masters of term 7, site a's logging to logA. Both Shippers run.
type sameTermSites struct {
	p            *capPair
	shipA, shipB *Shipper
	shimA, shimB *testShim
	lastID       int
}

func startSameTermSites(t *testing.T, logA *slog.Logger) *sameTermSites {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	installPair(t, p) // site a's, term 1 in both databases
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "b", p.peer.DSN("app"), p.local.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	s := &sameTermSites{p: p}
	s.shipA = NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: logA})
	s.shipB = NewShipper(ShipperConfig{Site: "b", LocalDSN: p.peer.DSN("app"), PeerDSN: p.local.DSN("app"), Conns: 2,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	for _, sh := range []*Shipper{s.shipA, s.shipB} {
		sh.SetTerm(7)
		runShipper(t, sh)
	}
	s.shimA = startShim(t, p.local, Options{Peer: s.shipA, Site: "a", Logger: logA}, ModeDual, 7)
	s.shimB = startShim(t, p.peer, Options{Peer: s.shipB, Site: "b", Logger: quietLogger()}, ModeDual, 7)
	return s
}

// eachOwnTerm7 writes the term records of a same-term split brain: A's database names a
// master of term 7, B's names b.
func (s *sameTermSites) eachOwnTerm7(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := WriteTermRecord(ctx, s.p.ldb, 7, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, s.p.pdb, 7, "b", true); err != nil {
		t.Fatal(err)
	}
}

// insert commits one row through sh (a fresh id each time) and returns its error.
func (s *sameTermSites) insert(t *testing.T, sh *testShim) (int, error) {
	t.Helper()
	s.lastID++
	id := s.lastID
	conn := sh.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, "INSERT INTO acct VALUES ($1, 100)", id)
	return id, err
}

// rows counts the rows of id on A and on B.
func (s *sameTermSites) rows(t *testing.T, id int) (onA, onB int) {
	t.Helper()
	q := `SELECT count(*) FROM acct WHERE id = $1`
	return queryOne[int](t, s.p.ldb, q, id), queryOne[int](t, s.p.pdb, q, id)
}

// requireFenced: a commit through sh was refused by the §3 fence (25006, naming the term of
// another master) and is on neither database.
func (s *sameTermSites) requireFenced(t *testing.T, what string, sh *testShim) {
	t.Helper()
	id, err := s.insert(t, sh)
	if pgCode(err) != "25006" || !strings.Contains(err.Error(), "fenced") {
		t.Errorf("%s: commit = %v (SQLSTATE %s), want 25006 fenced", what, err, pgCode(err))
	}
	waitForLong(t, "nothing prepared", 20*time.Second, func() bool {
		return queryOne[int](t, s.p.ldb, `SELECT count(*) FROM pg_prepared_xacts`)+queryOne[int](t, s.p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	if a, b := s.rows(t, id); a+b != 0 {
		t.Errorf("%s: the refused row is on A %d time(s), on B %d", what, a, b)
	}
}

// TestSameTermTwoSitesFenced: two sites that both took term 7 (a same-term split brain without
// a witness) run their shims and Shippers over one pair of real databases. A term record names
// its master: the databases' fence (the shim's commit check on the local database, check_term
// in the peer's apply) refuses a commit of term 7 by the site the record does not name, and a
// term record of that site over the other's, in every legitimate path kept: the record's own
// master commits and rewrites it, and a handover to term 9 moves the fence.
func TestSameTermTwoSitesFenced(t *testing.T) {
	t.Parallel()
	s := startSameTermSites(t, quietLogger())
	ctx := capCtx(t, 2*time.Minute)

	// Each site saved term 7 into its own database first (the node's Save), neither reached
	// the other's: A says (7, a), B (7, b). Each commit is refused by the peer's apply.
	s.eachOwnTerm7(t, ctx)
	if err := WriteTermRecord(ctx, s.p.ldb, 7, "b", true); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("term record (7, b) over A's (7, a): %v, want ErrStaleTerm", err)
	}
	if err := WriteTermRecord(ctx, s.p.pdb, 7, "a", true); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("term record (7, a) over B's (7, b): %v, want ErrStaleTerm", err)
	}
	s.requireFenced(t, "site a, dual in term 7, B held by b", s.shimA)
	s.requireFenced(t, "site b, dual in term 7, A held by a", s.shimB)

	// Term 8, site a's in both databases: b, dual or solo in it, is refused by its own database.
	if err := WriteTermRecord(ctx, s.p.ldb, 8, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, s.p.pdb, 8, "a", true); err != nil {
		t.Fatal(err)
	}
	s.shipA.SetTerm(8)
	s.shipB.SetTerm(8)
	s.shimA.SetMode(ModeDual, 8)
	s.shimB.SetMode(ModeDual, 8)
	s.requireFenced(t, "site b, dual in term 8 of a", s.shimB)
	s.shimB.SetMode(ModeSolo, 8)
	s.requireFenced(t, "site b, solo in term 8 of a", s.shimB)
	if err := WriteTermRecord(ctx, s.p.pdb, 8, "b", false); !errors.Is(err, ErrStaleTerm) {
		t.Errorf("term record (8, b) over B's (8, a): %v, want ErrStaleTerm", err)
	}
	// The term's master commits, and rewrites its own record (peer_synced).
	id, err := s.insert(t, s.shimA)
	if err != nil {
		t.Fatalf("site a, dual master of term 8 in both records: %v", err)
	}
	waitForLong(t, "site a's row on both", 20*time.Second, func() bool { a, b := s.rows(t, id); return a == 1 && b == 1 })
	if err := WriteTermRecord(ctx, s.p.ldb, 8, "a", false); err != nil {
		t.Errorf("site a rewriting its own term record: %v", err)
	}

	// A handover to b, term 9 in both: b commits, a (still in term 8) is refused.
	if err := WriteTermRecord(ctx, s.p.pdb, 9, "b", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, s.p.ldb, 9, "b", true); err != nil {
		t.Fatal(err)
	}
	s.shipB.SetTerm(9)
	s.shimB.SetMode(ModeDual, 9)
	id, err = s.insert(t, s.shimB)
	if err != nil {
		t.Fatalf("site b, dual master of term 9 after the handover: %v", err)
	}
	waitForLong(t, "site b's row on both", 20*time.Second, func() bool { a, b := s.rows(t, id); return a == 1 && b == 1 })
	s.requireFenced(t, "site a, dual in term 8 after the handover to b's 9", s.shimA)
}

// TestPeerTermRefusalNoSolo: site a, dual master of term 7, learns from the peer database that
// b holds term 7 there (B says (7, b), A (7, a): each site saved the term into its own
// database first, a split brain in one term), when B refuses a commit a made plainly (shipped
// from the stream) as of a stale term. Its next dual commit must be refused too (25006), not
// taken for one whose peer did not answer: that went solo and committed alone on A, in the term
// whose record on B names b — beside b's own commits in it.
func TestPeerTermRefusalNoSolo(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	s := startSameTermSites(t, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := capCtx(t, 2*time.Minute)
	s.eachOwnTerm7(t, ctx)
	// A plain commit on A (a write that bypassed the shim's wrapping), shipped from the stream.
	if _, err := s.p.ldb.ExecContext(ctx, `INSERT INTO acct VALUES (1000, 1)`); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "B's refusal of the plain commit", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "newer term")
	})
	s.lastID = 10
	s.requireFenced(t, "site a, dual in term 7, after B refused a's plain commit of term 7", s.shimA)
	if mode, term := s.shimA.Mode(); mode != ModeDual || term != 7 {
		t.Errorf("site a's shim after the refusals: %v of term %d, want dual of term 7 (never solo)", mode, term)
	}
}

// TestPeerTermRefusalWhilePrepareWaits: as TestPeerTermRefusalNoSolo, but the dual commit
// comes right behind the plain commit, its Prepare already waiting for that one to reach the
// peer (DESIGN §5.2 "Order on the peer") when B refuses it. The refusal takes the Shipper down
// under the waiting Prepare, whose wait then ends with "not in step": that too must be the
// definite refusal (25006), not the unknown outcome that has the shim go solo and commit alone
// on A in the term B's record gives b.
func TestPeerTermRefusalWhilePrepareWaits(t *testing.T) {
	t.Parallel()
	s := startSameTermSites(t, quietLogger())
	ctx := capCtx(t, 2*time.Minute)
	s.eachOwnTerm7(t, ctx)
	// B's term record locked: the plain commit's apply waits in its term check. The lock's
	// session is counted among site a's Shipper's own (ownPIDs), which the apply's watchdog
	// spares: the wait below outlasts blockerGrace on a loaded machine, and the watchdog ended
	// the session under the test (lock.Rollback: driver: bad connection).
	lock, err := s.p.pdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	var lockPID uint32
	if err := lock.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&lockPID); err != nil {
		t.Fatal(err)
	}
	s.shipA.own.add(lockPID)
	defer s.shipA.own.remove(lockPID)
	if _, err := lock.ExecContext(ctx, `LOCK TABLE tandem.state IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.p.ldb.ExecContext(ctx, `INSERT INTO acct VALUES (1000, 1)`); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the plain commit's apply waiting on B", 30*time.Second, func() bool {
		return queryOne[int](t, s.p.pdb, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND application_name LIKE '%plain%'`) > 0
	})
	next := pauseAt(s.shimA.Shim, "after-local-prepare")
	paused, resume := next()
	var resumeOnce sync.Once
	resumeNow := func() { resumeOnce.Do(func() { close(resume) }) }
	// The dual commit runs on a goroutine that ends before the test does, whatever way the test
	// ends: its connection is closed by the test's cleanup, which must not run under it.
	conn := s.shimA.connect(t)
	s.lastID = 11
	done := make(chan error, 1)
	go func() {
		ictx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := conn.Exec(ictx, "INSERT INTO acct VALUES ($1, 100)", 11)
		done <- err
	}()
	ended := false
	defer func() {
		if !ended {
			resumeNow()
			lock.Rollback()
			<-done
		}
	}()
	select {
	case <-paused:
	case err := <-done:
		ended = true
		t.Fatalf("the dual commit ended before its peer prepare: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the dual commit never reached its peer prepare")
	}
	resumeNow()
	time.Sleep(500 * time.Millisecond) // the Prepare waits behind the plain commit
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	err = <-done
	ended = true
	if pgCode(err) != "25006" || !strings.Contains(err.Error(), "fenced") {
		t.Errorf("dual commit behind the refused plain commit: commit = %v (SQLSTATE %s), want 25006 fenced", err, pgCode(err))
	}
	if a, b := s.rows(t, 11); a+b != 0 {
		t.Errorf("the refused row is on A %d time(s), on B %d", a, b)
	}
	if mode, term := s.shimA.Mode(); mode != ModeDual || term != 7 {
		t.Errorf("site a's shim after the refusal: %v of term %d, want dual of term 7 (never solo)", mode, term)
	}
}

// TestPeerTermRefusalPlainThroughShim: as TestPeerTermRefusalNoSolo, with the plain commit made
// through a's shim (a procedure's, CALL outside a transaction block), whose reply waits for it
// to reach the peer (awaitShipped). B refuses it for its term: the wait ends with the Shipper
// down, which was taken for a peer that does not answer — the shim went solo and committed
// everything after alone on A, in the term B's record gives b. The client hears that its
// commit is on A only (08007), the shim stays dual, and the next dual commit is refused
// (25006).
func TestPeerTermRefusalPlainThroughShim(t *testing.T) {
	t.Parallel()
	s := startSameTermSites(t, quietLogger())
	ctx := capCtx(t, 2*time.Minute)
	s.eachOwnTerm7(t, ctx)
	s.p.both(t, `CREATE PROCEDURE ins(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	conn := s.shimA.connect(t)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err := conn.Exec(cctx, `CALL ins(1000)`)
	cancel()
	t.Logf("CALL through a's shim, B refusing its term: %v", err)
	if pgCode(err) != "08007" {
		t.Errorf("CALL whose commit B refused for its term: %v (SQLSTATE %s), want 08007 (committed on A only)", err, pgCode(err))
	}
	if mode, term := s.shimA.Mode(); mode != ModeDual || term != 7 {
		t.Fatalf("site a's shim after B refused its plain commit: %v of term %d, want dual of term 7 (never solo)", mode, term)
	}
	s.lastID = 10
	s.requireFenced(t, "site a, dual in term 7, after B refused a's plain commit made through its shim", s.shimA)
}
