package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tandem-ha/tandem/config"
)

// shipStalled is a fakePeer whose WaitShipped tells that a plain commit waits for the peer
// (waiting), then never sees it shipped: as the Shipper's, the wait ends at ctx's deadline or
// when ctx is cancelled.
type shipStalled struct {
	*fakePeer
	waiting chan struct{}
}

func (p shipStalled) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	select {
	case p.waiting <- struct{}{}:
	default:
	}
	var expired <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-ctx.Done():
	case <-expired:
	}
	return errNotInStep
}

// unseenWriterShim starts a dual shim (commit_timeout 2 s) whose peer never ships a plain
// commit, and creates, behind the shim's back once it has read its catalog, a function w that
// writes: the shim takes SELECT w(…) for a read.
func unseenWriterShim(t *testing.T, peerDown string, announced *atomic.Int32) (*testShim, *sql.DB, shipStalled) {
	t.Helper()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := shipStalled{fakePeer: &fakePeer{c: c, t: t}, waiting: make(chan struct{}, 1)}
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, Logger: quietLogger(), FuncRefresh: time.Hour,
		OnPeerDown: func() bool { announced.Add(1); return true }}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = peerDown; cfg.CommitTimeout = 2 * time.Second })
	ctx := capCtx(t, 30*time.Second)
	conn := s.connect(t)
	waitForLong(t, "the shim's catalog", 20*time.Second, func() bool {
		if _, err := conn.Exec(ctx, "SELECT count(*) FROM acct WHERE id = abs(-1)"); err != nil {
			t.Fatal(err)
		}
		return !s.Catalog().ReadAt.IsZero()
	})
	c.Exec(t, `CREATE FUNCTION w(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO acct VALUES (i, 1) RETURNING i'`)
	return s, c.Open(t, c.Database()), peer
}

// execWaiting runs sql through a new connection to s and returns once its reply waits for the
// peer (shipStalled.waiting); the statement's outcome comes on the channel.
func execWaiting(ctx context.Context, t *testing.T, s *testShim, peer shipStalled, sql string) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, sql)
		done <- err
	}()
	select {
	case <-peer.waiting:
	case err := <-done:
		t.Fatalf("%s: its reply did not wait for the peer: %v", sql, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: its reply never waited for the peer", sql)
	}
	return done
}

// TestUnseenWriteDrained: a write the lexer took for a read (a function created behind the
// shim's back), committed in an explicit transaction in dual mode, commits plainly and its
// reply waits for the peer (awaitShipped). That commit must count as in flight: a handover's
// Drain returned at once while it still waited, and "released" could go out saying the peer has
// everything before the wait failed and recorded peer_synced = false (DESIGN §3 rule 2).
func TestUnseenWriteDrained(t *testing.T) {
	t.Parallel()
	var announced atomic.Int32
	s, db, peer := unseenWriterShim(t, config.PeerDownContinue, &announced)
	ctx := capCtx(t, 30*time.Second)
	done := execWaiting(ctx, t, s, peer, "BEGIN; SELECT w(1); COMMIT")
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 1`); n != 1 {
		t.Fatalf("%d rows committed locally, want 1", n)
	}
	handOver(ctx, t, s)
	if announced.Load() == 0 {
		t.Error("Drain returned while a commit the peer lacks still waited for it: \"released\" would go out before peer_synced = false")
	}
	if err := <-done; pgCode(err) != "08007" {
		t.Fatalf("the write whose peer never took it: %v, want 08007", err)
	}
	if announced.Load() == 0 {
		t.Error("peer_synced = false never announced")
	}
}

// TestUnseenWriteHeld: catch-up's hold (HoldCommits) stops a write the lexer took for a read as
// it stops any other, and is granted only once such a write already committing is done — else
// the hold ends with the peer marked synced while a commit it does not cover is unshipped.
func TestUnseenWriteHeld(t *testing.T) {
	t.Parallel()
	var announced atomic.Int32
	// block: a write whose peer did not take it leaves the shim dual.
	s, db, peer := unseenWriterShim(t, config.PeerDownBlock, &announced)
	ctx := capCtx(t, 30*time.Second)

	// A hold asked for while the write waits for the peer waits for it.
	done := execWaiting(ctx, t, s, peer, "BEGIN; SELECT w(1); COMMIT")
	hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
	release, err := s.HoldCommits(hctx)
	hcancel()
	if err != nil {
		t.Fatal(err)
	}
	if announced.Load() == 0 {
		t.Error("the hold was granted while a write the lexer took for a read still waited for the peer")
	}
	if err := <-done; pgCode(err) != "08007" {
		t.Fatalf("the write whose peer never took it: %v, want 08007", err)
	}

	// A write the lexer took for a read does not commit under the hold.
	held := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "BEGIN; SELECT w(2); COMMIT")
		held <- err
	}()
	time.Sleep(500 * time.Millisecond)
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 0 {
		t.Error("a write the lexer took for a read committed under the hold")
	}
	// A read does not wait for the hold.
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	tx, err := s.connect(t).Begin(rctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(rctx, "SELECT count(*) FROM acct").Scan(&n); err != nil {
		t.Fatalf("a read under the hold: %v", err)
	}
	if err := tx.Commit(rctx); err != nil {
		t.Fatalf("a read's commit under the hold: %v", err)
	}
	release()
	if err := <-held; err != nil && pgCode(err) != "08007" {
		t.Fatalf("the held write: %v", err)
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 1 {
		t.Fatalf("the held write: %d rows, want 1", n)
	}
}

// TestProcGated: a procedure (CALL outside a transaction block) commits what it wrote itself,
// outside the commit procedure. It passes the commit gate all the same: a handover's Drain waits
// for it and for its reply's wait for the peer (dual mode), catch-up's hold stops it (solo
// mode), and one that comes through after the role was given up is refused.
func TestProcGated(t *testing.T) {
	t.Parallel()
	const proc = `CREATE PROCEDURE p(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`
	t.Run("drain", func(t *testing.T) {
		var announced atomic.Int32
		s, db, peer := unseenWriterShim(t, config.PeerDownContinue, &announced)
		if _, err := db.Exec(proc); err != nil {
			t.Fatal(err)
		}
		ctx := capCtx(t, 30*time.Second)
		done := execWaiting(ctx, t, s, peer, "CALL p(1)")
		handOver(ctx, t, s)
		if announced.Load() == 0 {
			t.Error("Drain returned while a procedure's commit the peer lacks still waited for it")
		}
		if err := <-done; pgCode(err) != "08007" {
			t.Fatalf("the procedure whose commit the peer never took: %v, want 08007", err)
		}
	})
	t.Run("hold", func(t *testing.T) {
		c := testCluster(t)
		c.Exec(t, installSQL)
		c.Exec(t, proc)
		s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
		db := c.Open(t, c.Database())
		ctx := capCtx(t, 30*time.Second)
		call := func(i int) <-chan error {
			done := make(chan error, 1)
			go func() {
				_, err := s.connect(t).Exec(ctx, fmt.Sprintf("CALL p(%d)", i))
				done <- err
			}()
			return done
		}
		release, err := s.HoldCommits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := call(2)
		time.Sleep(500 * time.Millisecond)
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 0 {
			t.Error("a procedure committed under the hold")
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("the held procedure: %v", err)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 1 {
			t.Fatalf("the held procedure: %d rows, want 1", n)
		}

		// Held, then the role is given up: refused.
		if release, err = s.HoldCommits(ctx); err != nil {
			t.Fatal(err)
		}
		done = call(3)
		time.Sleep(500 * time.Millisecond)
		s.SetMode(ModeReadOnly, 1)
		release()
		if err := <-done; pgCode(err) != "25006" {
			t.Fatalf("a procedure let through after the role was given up: %v, want 25006", err)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 3`); n != 0 {
			t.Fatal("a procedure let through after the role was given up committed")
		}
	})
}

// handOver turns s read-only in term 1, as a handover's setRole does, and drains it (Drain,
// bounded).
func handOver(ctx context.Context, t *testing.T, s *testShim) {
	t.Helper()
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}
