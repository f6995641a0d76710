package txshim

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
)

// fastCall sends a fast-path call of the function oid with the text argument arg through a new
// connection to s; its outcome (nil, or the error the server sent) comes on the channel.
func fastCall(ctx context.Context, t *testing.T, s *testShim, oid uint32, arg string) <-chan error {
	t.Helper()
	conn := s.connect(t)
	done := make(chan error, 1)
	go func() {
		fe := conn.PgConn().Frontend()
		fe.Send(&pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte(arg)}})
		if err := fe.Flush(); err != nil {
			done <- err
			return
		}
		var failed error
		for ctx.Err() == nil {
			m, err := fe.Receive()
			if err != nil {
				done <- err
				return
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				failed = fmt.Errorf("%s: %s", m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				done <- failed
				return
			}
		}
		done <- ctx.Err()
	}()
	return done
}

// TestFastPathGated: a fast-path function call outside a transaction block commits what the
// function wrote plainly, outside the commit procedure, as a procedure does. It passes the
// commit gate as a procedure does: a handover's Drain waits for it and for its reply's wait for
// the peer (dual mode), and catch-up's hold stops it (solo mode).
func TestFastPathGated(t *testing.T) {
	t.Parallel()
	t.Run("drain", func(t *testing.T) {
		var announced atomic.Int32
		s, db, peer := unseenWriterShim(t, config.PeerDownContinue, &announced)
		ctx := capCtx(t, 30*time.Second)
		oid := queryOne[uint32](t, db, `SELECT 'w(int)'::regprocedure::oid`)
		done := fastCall(ctx, t, s, oid, "1")
		select {
		case <-peer.waiting:
		case err := <-done:
			t.Fatalf("the fast-path call's reply did not wait for the peer: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("the fast-path call's reply never waited for the peer")
		}
		handOver(ctx, t, s)
		if announced.Load() == 0 {
			t.Error("Drain returned while a fast-path call's commit the peer lacks still waited for it")
		}
		if err := <-done; err == nil {
			t.Fatal("the fast-path call whose commit the peer never took succeeded, want 08007")
		}
	})
	t.Run("hold", func(t *testing.T) {
		c := testCluster(t)
		c.Exec(t, installSQL)
		c.Exec(t, `CREATE FUNCTION w(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO acct VALUES (i, 1) RETURNING i'`)
		s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
		db := c.Open(t, c.Database())
		ctx := capCtx(t, 30*time.Second)
		oid := queryOne[uint32](t, db, `SELECT 'w(int)'::regprocedure::oid`)
		release, err := s.HoldCommits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := fastCall(ctx, t, s, oid, "2")
		time.Sleep(500 * time.Millisecond)
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 0 {
			t.Error("a fast-path call committed under the hold")
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("the held fast-path call: %v", err)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 2`); n != 1 {
			t.Fatalf("the held fast-path call: %d rows, want 1", n)
		}

		// Held, then the role is given up: refused.
		if release, err = s.HoldCommits(ctx); err != nil {
			t.Fatal(err)
		}
		done = fastCall(ctx, t, s, oid, "3")
		time.Sleep(500 * time.Millisecond)
		s.SetMode(ModeReadOnly, 1)
		release()
		if err := <-done; err == nil {
			t.Fatal("a fast-path call let through after the role was given up succeeded, want 25006")
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 3`); n != 0 {
			t.Fatal("a fast-path call let through after the role was given up committed")
		}
	})
}

// TestShipAfterGated: CREATE INDEX CONCURRENTLY runs outside a transaction block, and the shim
// then records it in tandem.ddl in a transaction of its own, committed plainly. Like a procedure
// it passes the commit gate: a handover's Drain waits for it, its record and its reply's wait
// for the peer (dual mode), else "released" goes out and the successor lacks the DDL record;
// catch-up's hold stops it (solo mode); one that comes through after the role was given up is
// refused.
func TestShipAfterGated(t *testing.T) {
	t.Parallel()
	t.Run("drain", func(t *testing.T) {
		var announced atomic.Int32
		s, db, peer := unseenWriterShim(t, config.PeerDownContinue, &announced)
		ctx := capCtx(t, 30*time.Second)
		done := execWaiting(ctx, t, s, peer, "CREATE INDEX CONCURRENTLY acct_bal ON acct (bal)")
		if n := queryOne[int](t, db, `SELECT count(*) FROM tandem.ddl`); n != 1 {
			t.Fatalf("%d DDL records, want 1", n)
		}
		handOver(ctx, t, s)
		if announced.Load() == 0 {
			t.Error("Drain returned while the DDL record of a CREATE INDEX CONCURRENTLY, which the peer lacks, still waited for it")
		}
		if err := <-done; pgCode(err) != "08007" {
			t.Fatalf("the CREATE INDEX CONCURRENTLY whose record the peer never took: %v, want 08007", err)
		}
	})
	t.Run("hold", func(t *testing.T) {
		c := testCluster(t)
		c.Exec(t, installSQL)
		s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
		db := c.Open(t, c.Database())
		ctx := capCtx(t, 30*time.Second)
		run := func(sql string) <-chan error {
			done := make(chan error, 1)
			go func() {
				_, err := s.connect(t).Exec(ctx, sql)
				done <- err
			}()
			return done
		}
		release, err := s.HoldCommits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := run("CREATE INDEX CONCURRENTLY acct_bal ON acct (bal)")
		time.Sleep(500 * time.Millisecond)
		if n := queryOne[int](t, db, `SELECT count(*) FROM tandem.ddl`); n != 0 {
			t.Error("the DDL record of a CREATE INDEX CONCURRENTLY committed under the hold")
		}
		release()
		if err := <-done; err != nil {
			t.Fatalf("the held CREATE INDEX CONCURRENTLY: %v", err)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM tandem.ddl`); n != 1 {
			t.Fatalf("the held CREATE INDEX CONCURRENTLY: %d DDL records, want 1", n)
		}

		// Held, then the role is given up: refused, the index not made.
		if release, err = s.HoldCommits(ctx); err != nil {
			t.Fatal(err)
		}
		done = run("CREATE INDEX CONCURRENTLY acct_bal2 ON acct (bal, id)")
		time.Sleep(500 * time.Millisecond)
		s.SetMode(ModeReadOnly, 1)
		release()
		if err := <-done; pgCode(err) != "25006" {
			t.Fatalf("a CREATE INDEX CONCURRENTLY let through after the role was given up: %v, want 25006", err)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM pg_class WHERE relname = 'acct_bal2'`); n != 0 {
			t.Fatal("a CREATE INDEX CONCURRENTLY let through after the role was given up made its index")
		}
	})
}

// TestShipAfterHoldLockCycle: a CREATE INDEX CONCURRENTLY in solo mode waits for a write
// transaction on its table to end, and that transaction's COMMIT arrives while catch-up asks for
// its hold. The hold waits for the index build (it passed the gate) without stopping the
// transaction's commit, so all three go on: no cycle until the hold's timeout.
func TestShipAfterHoldLockCycle(t *testing.T) {
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	ctx := capCtx(t, 60*time.Second)

	b := s.connect(t)
	if _, err := b.Exec(ctx, "BEGIN; INSERT INTO acct VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	const cic = "CREATE INDEX CONCURRENTLY acct_bal ON acct (bal)"
	cicDone := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, cic)
		cicDone <- err
	}()
	db := c.Open(t, c.Database())
	waitForLong(t, "the index build waiting for the transaction", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND wait_event_type = 'Lock'`, cic) == 1
	})
	holdDone := make(chan error, 1)
	var release func()
	go func() {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second) // cmd/tandem's holdTimeout
		defer cancel()
		r, err := s.HoldCommits(hctx)
		release = r
		holdDone <- err
	}()
	time.Sleep(200 * time.Millisecond) // the hold is asked for
	commitDone := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, "COMMIT")
		commitDone <- err
	}()
	if err := <-holdDone; err != nil {
		t.Errorf("catch-up's hold, asked while an index build waited for a transaction about to commit: %v", err)
	} else {
		release()
	}
	if err := <-commitDone; err != nil {
		t.Fatal(err)
	}
	if err := <-cicDone; err != nil {
		t.Fatal(err)
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM tandem.ddl`); n != 1 {
		t.Fatalf("%d DDL records, want 1", n)
	}
}
