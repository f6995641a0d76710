package txshim

import (
	"database/sql"
	"errors"
	"testing"
	"time"
)

// TestStaleMasterResolverLeavesSuccessor: site a, master of term 1, lost its role without
// knowing yet (its process paused, its sidecar cut off), and site b took term 2: its record is
// in both databases, and b commits dual through its shim into a's database. a's resolver,
// whose periodic pass runs while a still takes itself for master, listed b's prepared
// transactions on both databases and settled them by DESIGN §5.4's table, knowing nothing of
// what b had in flight (InFlight is a's shim's) and checking no term: with b between its local
// PREPARE and the peer's, it took the gid for prepared on b's database only and rolled it back
// there — b's client heard 40000 for a commit nothing had refused, and b's shim went solo — and
// at b's later steps it committed b's transactions on b's behalf. A master's pass must leave a
// successor's transactions alone: it refuses with ErrStaleTerm, as an apply does (§3 fencing).
func TestStaleMasterResolverLeavesSuccessor(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	installPair(t, p) // site a's, term 1
	ctx := capCtx(t, 120*time.Second)
	if err := Install(ctx, "b", p.peer.DSN("app"), p.local.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	// b's promotion: the node saved term 2 in b's database, promote wrote it into a's.
	for _, db := range []*sql.DB{p.pdb, p.ldb} {
		if err := WriteTermRecord(ctx, db, 2, "b", true); err != nil {
			t.Fatal(err)
		}
	}
	logger := quietLogger()
	shipB := NewShipper(ShipperConfig{Site: "b", LocalDSN: p.peer.DSN("app"), PeerDSN: p.local.DSN("app"), Conns: 2,
		SequenceInterval: -1, Logger: logger})
	shipB.SetTerm(2)
	runShipper(t, shipB)
	b := startShim(t, p.peer, Options{Peer: shipB, Site: "b", Logger: logger}, ModeDual, 2)
	stale := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: logger})
	conn := b.connect(t)

	for i, at := range []string{"after-peer-prepare", "after-local-commit", "after-local-prepare"} {
		id := i + 1
		paused, resume := pauseAt(b.Shim, at)()
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "INSERT INTO acct VALUES ($1, 100)", id)
			done <- err
		}()
		select {
		case <-paused:
		case err := <-done:
			t.Fatalf("%s: site b's commit ended before the step: %v", at, err)
		}
		rep, err := stale.ResolveInTerm(ctx, 1)
		close(resume)
		cerr := <-done
		if len(rep.Committed)+len(rep.RolledBack) > 0 || !errors.Is(err, ErrStaleTerm) {
			t.Errorf("%s: pass of site a's resolver (term 1) during site b's commit (term 2): %+v, %v; want nothing done, ErrStaleTerm", at, rep, err)
		}
		if cerr != nil {
			t.Fatalf("%s: site b's commit, met by site a's pass: %v (SQLSTATE %s), want COMMIT", at, cerr, pgCode(cerr))
		}
		if mode, term := b.Mode(); mode != ModeDual || term != 2 {
			t.Fatalf("%s: site b's shim after site a's pass: %v of term %d, want dual of term 2", at, mode, term)
		}
	}
	waitForLong(t, "nothing prepared", 20*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`)+queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct`); n != 3 {
			t.Errorf("%d rows, want site b's 3", n)
		}
	}
	requireSame(t, p)
}

// TestStaleMasterResolverNewerGID: the term records say nothing newer where the stale master
// looks — its own database kept term 1 (the successor's promotion did not reach it), the
// successor's does not answer — but a copy the successor (site b, term 2) applied is prepared
// on its database. Its pass must leave it to b, not commit it by the rule for a copy whose own
// site is out of reach: the gid's term tells it is a newer master's.
func TestStaleMasterResolverNewerGID(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	installPair(t, p) // site a's, term 1
	gid := gidFor("b", 2, 7)
	prepareLocal(t, p.ldb, gid, `INSERT INTO acct VALUES (1, 100)`)
	stale := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"),
		PeerDSN: "postgres://postgres@127.0.0.1:1/app?sslmode=disable", Logger: quietLogger()})
	rep, err := stale.ResolveInTerm(capCtx(t, 30*time.Second), 1)
	if len(rep.Committed)+len(rep.RolledBack) > 0 || !errors.Is(err, ErrStaleTerm) {
		t.Errorf("pass of site a's resolver (term 1) with %s prepared on its database: %+v, %v; want nothing done, ErrStaleTerm", gid, rep, err)
	}
	if !preparedOn(t, p.ldb, gid) {
		t.Errorf("%s is not prepared any more", gid)
	}
	if _, err := p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid)); err != nil {
		t.Log(err)
	}
}
