package txshim

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// barrierStepShim is a shim of term 1 in dual mode over p, with a synced Shipper, after one dual
// commit through it. Going solo is refused (the node learnt of a newer term): OnPeerDown counts
// and says no.
func barrierStepShim(t *testing.T, tweaks ...func(*config.TxShim)) (*capPair, *Shipper, *testShim, *atomic.Int32) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	sh := syncedShipper(t, p)
	announced := new(atomic.Int32)
	s := startShimDSN(t, p.local, p.local.DSN(p.local.Database()), Options{Site: "a", Peer: sh, Logger: quietLogger(), FuncRefresh: time.Hour,
		OnPeerDown: func() bool { announced.Add(1); return false }}, ModeDual, 1, tweaks...)
	ctx := capCtx(t, 30*time.Second)
	conn := s.connect(t)
	for _, q := range []string{"BEGIN", "INSERT INTO acct VALUES (1, 1)", "COMMIT"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The peer's COMMIT PREPARED follows the reply.
	waitForLong(t, "the dual commit on the peer", 20*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM acct WHERE id = 1`) == 1
	})
	return p, sh, s, announced
}

// newerTerm writes term 2 of site "b" into the peer database, as the other site's promotion
// does (DESIGN §3 fencing).
func newerTerm(t *testing.T, p *capPair) {
	t.Helper()
	if err := WriteTermRecord(capCtx(t, 30*time.Second), p.pdb, 2, "b", true); err != nil {
		t.Fatal(err)
	}
}

// TestBarrierOutOfStepNothingLacking: a dual master frozen whole comes back after the other
// site took a newer term; its Shipper lost the peer (a commit in flight, a catch-up the newer
// term refuses) and is out of step when the handover's Barrier runs. Its stream holds no plain
// commit the peer lacks — every commit went through the dual commit, whose in-doubt ones the
// resolver settles on both databases — so Barrier must not count the term as one committed
// alone in: peer_synced = false recorded then, the newer term's master seen, made a split
// brain of it and stopped failback for good (TestBankWorkload/witness=true, "site1 frozen
// whole").
func TestBarrierOutOfStepNothingLacking(t *testing.T) {
	t.Parallel()
	p, sh, s, announced := barrierStepShim(t)
	newerTerm(t, p)
	sh.Down("test: the peer connection lost while the site was frozen", errors.New("connection reset"))
	s.SetMode(ModeReadOnly, 1) // the release, on learning of term 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := s.Barrier(ctx, 1); err != nil {
		t.Errorf("Barrier with the Shipper out of step, no plain commit unshipped: %v, want nil", err)
	}
	if announced.Load() != 0 || s.WentSolo(1) {
		t.Errorf("peer_synced = false recorded %d times, term 1 counted as committed alone in: %v; want neither (the peer lacks nothing)",
			announced.Load(), s.WentSolo(1))
	}
}

// TestBarrierOutOfStepPlainUnshipped: as TestBarrierOutOfStepNothingLacking, but a plain commit
// made on the local database (a write the shim did not see as one) was never shipped: the peer
// database, holding the newer term, refused it. The peer lacks it, and Barrier must still fail
// and count the term as one committed alone in.
func TestBarrierOutOfStepPlainUnshipped(t *testing.T) {
	t.Parallel()
	p, sh, s, announced := barrierStepShim(t)
	newerTerm(t, p)
	if _, err := p.ldb.Exec(`INSERT INTO acct VALUES (2, 1)`); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the Shipper out of step (the plain commit refused for its stale term)", 20*time.Second, func() bool {
		return sh.linkState() != linkOnline
	})
	s.SetMode(ModeReadOnly, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	err := s.Barrier(ctx, 1)
	t.Logf("Barrier: %v", err)
	if err == nil {
		t.Error("Barrier succeeded though the peer lacks a plain commit")
	}
	if announced.Load() == 0 || !s.WentSolo(1) {
		t.Errorf("peer_synced = false recorded %d times, term 1 counted as committed alone in: %v; want both", announced.Load(), s.WentSolo(1))
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM acct WHERE id = 2`); n != 0 {
		t.Fatalf("the plain commit is on the peer (%d rows): not the case this test is about", n)
	}
}

// TestBarrierAfterInDoubtSettled is TestBarrierOutOfStepNothingLacking the way the bank test
// met it: a dual commit in flight loses the peer (frozen here; in the bank test this site was
// frozen whole while the other took a newer term), may not go solo, and is left in doubt; the
// Shipper is out of step. The new master of term 2 settles the gid on both databases (its
// resolver), then this site's release runs the barrier, which must not count term 1 as one
// committed alone in: the databases agree.
func TestBarrierAfterInDoubtSettled(t *testing.T) {
	t.Parallel()
	p, sh, s, announced := barrierStepShim(t, func(cfg *config.TxShim) { cfg.CommitTimeout = time.Second })
	ctx := capCtx(t, 60*time.Second)
	conn := s.connect(t)
	if err := p.peer.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			p.peer.Resume()
		}
	}()
	var cerr error
	for _, q := range []string{"BEGIN", "INSERT INTO acct VALUES (3, 1)", "COMMIT"} {
		if _, cerr = conn.Exec(ctx, q); cerr != nil {
			break
		}
	}
	t.Logf("dual commit with the peer frozen and going solo refused: %v", cerr)
	if cerr == nil {
		t.Fatal("the dual commit succeeded with the peer frozen and going solo refused")
	}
	if err := p.peer.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if sh.linkState() == linkOnline {
		t.Fatal("the Shipper is in step after a dual commit whose peer did not answer: not the case this test is about")
	}
	newerTerm(t, p)
	// The new master's resolver settles the in-doubt gid on both databases.
	r := NewResolver(ResolverConfig{Site: "b", LocalDSN: p.peer.DSN("app"), PeerDSN: p.local.DSN("app"), Logger: quietLogger()})
	waitForLong(t, "the in-doubt gid settled", 30*time.Second, func() bool {
		if _, err := r.ResolveInTerm(ctx, 2); err != nil {
			t.Logf("resolve: %v", err)
		}
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`)+queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := s.Barrier(dctx, 1); err != nil {
		t.Errorf("Barrier after the in-doubt commit was settled: %v, want nil", err)
	}
	if announced.Load() > 1 || s.WentSolo(1) {
		t.Errorf("peer_synced = false recorded %d times (the refused solo switch asks once), term 1 counted as committed alone in: %v; want neither",
			announced.Load(), s.WentSolo(1))
	}
	l := queryOne[int](t, p.ldb, `SELECT count(*) FROM acct`)
	if r := queryOne[int](t, p.pdb, `SELECT count(*) FROM acct`); l != r {
		t.Errorf("the databases differ: %d rows here, %d on the peer", l, r)
	}
}
