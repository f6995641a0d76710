package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestBarrierNotShipped: a write the lexer took for a read, in an autocommit statement, commits
// plainly and is answered at once, before the peer has it; a handover's Drain does not wait for
// it (it is no commit the shim saw). Barrier, with a peer that never ships it, must fail within
// its bound and record peer_synced = false (OnPeerDown) before "released" goes out, the term
// counted as one committed alone in. A shim solo in its term (peer_synced = false recorded
// already) waits for nothing.
func TestBarrierNotShipped(t *testing.T) {
	var announced atomic.Int32
	s, db, peer := unseenWriterShim(t, config.PeerDownContinue, &announced)
	ctx := capCtx(t, 30*time.Second)
	if _, err := s.connect(t).Exec(ctx, "SELECT w(5)"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-peer.waiting:
		t.Fatal("the autocommit write the lexer took for a read waited for the peer: not the case this test is about")
	default:
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 5`); n != 1 {
		t.Fatalf("%d rows committed locally, want 1", n)
	}
	s.SetMode(ModeReadOnly, 1) // a handover: setRole on release
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	start := time.Now()
	err := s.Barrier(dctx, 1)
	took := time.Since(start)
	t.Logf("Barrier with a peer that never ships: %v after %v", err, took.Round(time.Millisecond))
	if err == nil {
		t.Fatal("Barrier succeeded though the peer never shipped the write")
	}
	if took > 5*time.Second {
		t.Errorf("Barrier took %v, commit_timeout is 2s", took)
	}
	if announced.Load() == 0 {
		t.Error("the peer lacks a write and peer_synced = false was never announced (OnPeerDown not called)")
	}
	if !s.WentSolo(1) {
		t.Error("the shim does not count term 1 as one it committed alone in")
	}
	select {
	case <-peer.waiting: // the barrier's own wait
	default:
		t.Error("Barrier did not wait for the peer")
	}

	// Solo in term 2: nothing to wait for.
	before := announced.Load()
	s.SetMode(ModeSolo, 2)
	s.SetMode(ModeReadOnly, 2)
	bctx, bcancel := context.WithTimeout(ctx, time.Second)
	defer bcancel()
	if err := s.Barrier(bctx, 2); err != nil {
		t.Errorf("Barrier after a solo term: %v, want nil", err)
	}
	select {
	case <-peer.waiting:
		t.Error("Barrier after a solo term waited for the peer")
	default:
	}
	if announced.Load() != before {
		t.Error("Barrier after a solo term announced peer_synced = false again")
	}
}

// TestBarrierShipped: with the real Shipper and a peer that takes it, Barrier returns once a
// write the lexer took for a read, answered before the peer had it, is on the peer database.
func TestBarrierShipped(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	sh := syncedShipper(t, p)
	var announced atomic.Int32
	s := startShimDSN(t, p.local, p.local.DSN(p.local.Database()), Options{Site: "a", Peer: sh, Logger: quietLogger(), FuncRefresh: time.Hour,
		OnPeerDown: func() bool { announced.Add(1); return true }}, ModeDual, 1)
	ctx := capCtx(t, 60*time.Second)
	conn := s.connect(t)
	waitForLong(t, "the shim's catalog", 20*time.Second, func() bool {
		if _, err := conn.Exec(ctx, "SELECT count(*) FROM acct WHERE id = abs(-1)"); err != nil {
			t.Fatal(err)
		}
		return !s.Catalog().ReadAt.IsZero()
	})
	if _, err := p.ldb.Exec(`CREATE FUNCTION w(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO acct VALUES (i, 1) RETURNING i'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT w(5)"); err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := s.Barrier(dctx, 1); err != nil {
		t.Fatalf("Barrier with the peer up: %v", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM acct WHERE id = 5`); n != 1 {
		t.Errorf("Barrier returned with the write not on the peer (%d rows there)", n)
	}
	if announced.Load() != 0 || s.WentSolo(1) {
		t.Errorf("peer_synced = false announced (%d) with the peer up", announced.Load())
	}
}

// TestBarrierEndsAtDeadline: Barrier never waits past its ctx's deadline (the drain's bound,
// which keeps a handover within commit_timeout + 36 s). When commit_timeout ran out first and
// WaitShipped went on waiting — a plain commit before the mark queued behind one the frozen
// peer holds, as it does while the decoder reads on — the deadline of ctx no longer ended it:
// WaitShipped ends at a cancel only, and the wait ran until the ship under way failed
// (OpTimeout here).
func TestBarrierEndsAtDeadline(t *testing.T) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`)
	installPair(t, p)
	sh := pairShipper(p, 1, 20*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 60*time.Second), nil); err != nil {
		t.Fatal(err)
	}
	var announced atomic.Int32
	s := startShimDSN(t, p.local, p.local.DSN(p.local.Database()), Options{Site: "a", Peer: sh, Logger: quietLogger(), FuncRefresh: time.Hour,
		OnPeerDown: func() bool { announced.Add(1); return true }}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.CommitTimeout = time.Second })
	if err := p.peer.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.peer.Resume() }) // before the shipper stops
	// Two plain commits the peer does not take: the first held by the frozen peer, the second
	// queued behind it.
	for _, id := range []int{1, 2} {
		if _, err := p.ldb.Exec(`INSERT INTO acct VALUES ($1, 1)`, id); err != nil {
			t.Fatal(err)
		}
	}
	s.SetMode(ModeReadOnly, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Barrier(ctx, 1)
	took := time.Since(start)
	t.Logf("Barrier with a 3s bound: %v after %v", err, took.Round(time.Millisecond))
	if err == nil {
		t.Fatal("Barrier succeeded though the peer is frozen")
	}
	if took > 5*time.Second {
		t.Errorf("Barrier took %v, past its ctx's deadline (3s)", took)
	}
	if announced.Load() == 0 || !s.WentSolo(1) {
		t.Error("peer_synced = false not recorded")
	}
}
