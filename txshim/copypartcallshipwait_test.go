package txshim

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// gatedShipPeer is a fakePeer whose WaitShipped, once armed, tells that it was entered and
// blocks until released: the peer does not have what a procedure committed until the test
// says so.
type gatedShipPeer struct {
	*fakePeer
	gate atomic.Pointer[shipGate]
}

type shipGate struct {
	entered chan struct{} // one value at the first WaitShipped
	release chan struct{} // closed: the peer has it
}

// arm makes the next WaitShipped calls block until the returned gate's release is closed.
func (p *gatedShipPeer) arm() *shipGate {
	g := &shipGate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	p.gate.Store(g)
	return g
}

func (p *gatedShipPeer) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	g := p.gate.Load()
	if g == nil {
		return nil
	}
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// committingProcAndWriter makes, on c, a procedure proc(i) that inserts i, commits, and inserts
// i + 3, and a function proc+"f"(i) that inserts i, and returns that function's oid (for a
// FunctionCall).
func committingProcAndWriter(t *testing.T, c *pgtest.Cluster, proc string) uint32 {
	t.Helper()
	c.Exec(t, fmt.Sprintf(`CREATE PROCEDURE %s(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); COMMIT; INSERT INTO acct VALUES (i + 3, 0); END $$`, proc))
	c.Exec(t, fmt.Sprintf(`CREATE FUNCTION %sf(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING i $$`, proc))
	var oid uint32
	if err := c.Open(t, c.Database()).QueryRow(fmt.Sprintf("SELECT '%sf(int)'::regprocedure::oid", proc)).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	return oid
}

// callCopyPart dials s and sends a CALL of proc(b) and a COPY acct FROM STDIN as one part of
// an extended request (up to a Flush), and reads its replies up to the COPY's CopyInResponse:
// the COPY runs in the request's implicit transaction, after what the procedure committed.
func callCopyPart(t *testing.T, s *testShim, proc string, b int) *rawSession {
	t.Helper()
	r := dialRaw(t, s)
	r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	sendMsgs(t, r, &pgproto3.Parse{Query: fmt.Sprintf("CALL %s(%d)", proc, b)}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
	if seen, err := r.until('G'); err != nil {
		t.Fatalf("COPY: %q %v", seen, err)
	}
	return r
}

// replyAfterPeer reads r's replies up to a ReadyForQuery, which must not come before the shim
// waits on g (the peer's WaitShipped) nor while it waits (200 ms); it then releases g and
// returns what came.
func replyAfterPeer(t *testing.T, r *rawSession, g *shipGate) (string, error) {
	t.Helper()
	type reply struct {
		seen string
		err  error
	}
	replied := make(chan reply, 1)
	go func() {
		seen, err := r.until('Z')
		replied <- reply{seen, err}
	}()
	select {
	case <-g.entered:
	case got := <-replied:
		close(g.release)
		t.Fatalf("the reply %q (%v) came before the peer had what the procedure committed", got.seen, got.err)
	}
	// The shim waits for the peer: no reply may come while it does.
	select {
	case got := <-replied:
		close(g.release)
		t.Fatalf("the reply %q (%v) came while the peer did not have what the procedure committed", got.seen, got.err)
	case <-time.After(200 * time.Millisecond):
	}
	close(g.release)
	got := <-replied
	return got.seen, got.err
}

// TestCopyPartAfterCallReplyWaitsForPeer: as TestCopyPartAfterCallThenQuery, a CALL and then
// a COPY FROM STDIN sent as a part (up to a Flush), the COPY run in the request's implicit
// transaction, and a simple Query or a FunctionCall after its CopyDone, which the shim runs in
// a block of its own it pulls that transaction into (joinImplicit). What the procedure
// committed itself, before the shim's BEGIN, was committed on this database alone: the reply
// to the Query or call (its ReadyForQuery) must not reach the client before the peer has it
// (awaitLeft), or a failover right after would lose what the client saw committed. The peer
// here holds WaitShipped until the test releases it: the reply must not come before that,
// whether the Query or call succeeds or fails.
func TestCopyPartAfterCallReplyWaitsForPeer(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &gatedShipPeer{fakePeer: &fakePeer{c: c, t: t}}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	oid := committingProcAndWriter(t, c, "cpw")
	for i, tc := range []string{"query", "query/error", "fcall", "fcall/error"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 100*i
			commits, want := 1, 4 // the procedure's two rows, the COPY's, the Query's
			arg := b + 5
			if strings.HasSuffix(tc, "/error") {
				arg, commits, want = b+1, 0, 1 // the COPY's row again; the procedure's first row stays
			}
			r := callCopyPart(t, s, "cpw", b)
			g := peer.arm()
			defer peer.gate.Store(nil)
			next := pgproto3.FrontendMessage(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", arg)})
			if strings.HasPrefix(tc, "fcall") {
				next = &pgproto3.FunctionCall{Function: oid, Arguments: [][]byte{[]byte(fmt.Sprint(arg))}}
			}
			sendMsgs(t, r, copyRow(b+1), &pgproto3.CopyDone{}, next, &pgproto3.Sync{})
			seen, err := replyAfterPeer(t, r, g)
			if err != nil {
				t.Fatalf("reply: %q %v", seen, err)
			}
			wantErr := strings.HasSuffix(tc, "/error")
			if strings.Contains(seen, "E(23505)") != wantErr {
				t.Errorf("reply %q: want an error (23505) %v", seen, wantErr)
			}
			if seen, st := r.ready(); seen != "Z" || st != 'I' {
				t.Errorf("the Sync's reply %q (%c), want Z (I)", seen, st)
			}
			checkDual(t, peer.take(), commits)
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != want {
				t.Errorf("%d rows committed, want %d", n, want)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}
