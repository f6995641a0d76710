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
		s.SetMode(ModeReadOnly, 1)
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.Drain(dctx); err != nil {
			t.Fatalf("Drain: %v", err)
		}
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
