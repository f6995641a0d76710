package txshim

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// bigPlainPair is startShipPair with the shim's commit timeout set to commitTimeout, brought
// to dual mode.
func bigPlainPair(t *testing.T, commitTimeout time.Duration, stmts ...string) (*capPair, *Shipper, *testShim) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, stmts...)
	installPair(t, p)
	logger := quietLogger()
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, Logger: logger})
	sh.SetTerm(1)
	runShipper(t, sh)
	shim := startShimDSN(t, p.local, p.local.DSN(p.local.Database()),
		Options{Peer: sh, Site: "a", Logger: logger, OnPeerDown: func() bool { return true }}, ModeSolo, 1,
		func(c *config.TxShim) { c.CommitTimeout = commitTimeout })
	catchUpToDual(t, sh, shim)
	return p, sh, shim
}

// TestBigPlainCommitStaysDual: a large transaction that commits plainly in dual mode (its
// session has a temporary table: an ETL loading through a staging table) waits for the peer
// to have it (awaitShipped) — for commit_timeout flat: no allowance for a decoder still reading
// it nor for its size, where a dual commit of the same transaction gets both. Its decode and
// ship outlasted the timeout, the Shipper went down, the master went on alone with a healthy
// peer. And a small dual commit of another session right behind it waited for it to be shipped
// (waitsFor: plain commits come first) for commit_timeout flat too.
func TestBigPlainCommitStaysDual(t *testing.T) {
	const rows = 150000
	p, sh, shim := bigPlainPair(t, 2*time.Second,
		`CREATE TABLE big (id int PRIMARY KEY, n int, v text)`, `CREATE TABLE small (id int PRIMARY KEY)`)
	ctx := capCtx(t, 2*time.Minute)
	etl, other := shim.connect(t), shim.connect(t)
	if _, err := etl.Exec(ctx, `CREATE TEMP TABLE staging (x int)`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := etl.Exec(ctx, `INSERT INTO big SELECT g, g, repeat('x', 100) FROM generate_series(1, 150000) g`)
		done <- err
	}()
	// Once it committed locally, a small dual commit of another session lands behind it.
	waitForLong(t, "the large plain commit on the local database", 60*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM big`) == rows
	})
	if _, err := other.Exec(ctx, `INSERT INTO small VALUES (1)`); err != nil {
		t.Fatalf("small dual commit behind it: %v", err)
	}
	small := time.Since(start)
	if err := <-done; err != nil {
		t.Fatalf("large plain commit: %v", err)
	}
	st := shim.Stats()
	m, _ := shim.Mode()
	t.Logf("large plain commit returned after %v (the small one after %v): mode %v, stats %+v, shipper %+v", time.Since(start), small, m, st, sh.Stats())
	if m != ModeDual || st.CommitsSolo != 0 || st.CommitsDual != 1 || st.Unwrapped != 2 { // the CREATE TEMP TABLE too
		t.Fatalf("mode %v, stats %+v: want both commits on the peer before their replies, the shim still dual", m, st)
	}
	waitForLong(t, "the backlog shipped", 60*time.Second, func() bool { return sh.Backlog() == 0 })
	if !sh.PeerSynced() {
		t.Fatal("the peer fell out of step")
	}
	requireSame(t, p)
}
