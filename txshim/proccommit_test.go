package txshim

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
)

// shipCounter is a fakePeer whose WaitShipped sees every plain commit shipped at once, counted.
type shipCounter struct {
	*fakePeer
	n *atomic.Int32
}

func (p shipCounter) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	p.n.Add(1)
	return nil
}

// TestCommitAfterProc: a COMMIT after a CALL in the same request (extended, or a simple Query)
// ended the implicit transaction the procedure ran in, and the writes in it, plainly: the shim
// sent the steps before the COMMIT with a terminator of its own and answered COMMIT without
// waiting for the peer (which the reply after a CALL does, lastPartProc), and the writes after
// the COMMIT went unwrapped and unwaited too (wrapFrom: none in a request with a procedure). A
// failover right after lost what the client was told was committed. The COMMIT's reply now
// waits until the peer has it, and a write after it gets the dual commit.
func TestCommitAfterProc(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE PROCEDURE noop() LANGUAGE sql AS $$ SELECT 1 $$")
	stmts := []string{"CALL noop()", "INSERT INTO acct VALUES (1, 0)", "COMMIT", "INSERT INTO acct VALUES (2, 0)"}

	// The peer never takes a plain commit and the site may not go on alone: the procedure's
	// COMMIT must not be answered as a success.
	blocked := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: notShipped{&fakePeer{c: c, t: t}}, Logger: quietLogger()}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
	for _, send := range []func(*rawSession, ...string){(*rawSession).pipeline, (*rawSession).simple} {
		r := dialRaw(t, blocked)
		send(r, stmts...)
		if got := r.replies(); !strings.Contains(got, "E(08007)") || strings.Contains(got, "C(COMMIT)") {
			t.Errorf("COMMIT after CALL, the peer not taking it: %s, want 08007 and no COMMIT", got)
		}
		c.Exec(t, "TRUNCATE acct")
	}

	var shipped atomic.Int32
	peer := shipCounter{&fakePeer{c: c, t: t}, &shipped}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	d := dialRawDSN(t, c.DSN(c.Database()))
	for _, send := range []func(*rawSession, ...string){(*rawSession).pipeline, (*rawSession).simple} {
		send(d, stmts...)
		want := d.replies()
		c.Exec(t, "TRUNCATE acct")
		shipped.Store(0)
		r := dialRaw(t, s)
		send(r, stmts...)
		if got := r.replies(); got != want {
			t.Errorf("COMMIT after CALL: %s, want %s", got, want)
		}
		if n := shipped.Load(); n != 1 || rowCount(t, c, "true") != 2 {
			t.Errorf("COMMIT after CALL: %d waits for the peer, %d rows; want 1, 2", n, rowCount(t, c, "true"))
		}
		checkDual(t, peer.take(), 1)
		c.Exec(t, "TRUNCATE acct")
	}
}

// TestDoCallsProc: a DO block that CALLs a procedure which commits, with no COMMIT of its own
// in its text, was taken for a plain write and wrapped in the shim's BEGIN, where PostgreSQL
// fails the procedure's COMMIT (2D000, invalid transaction termination); outside a
// transaction block, as sent, PostgreSQL runs it. It now passes as a procedure: run as sent,
// its reply waiting until the peer has what it committed.
func TestDoCallsProc(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE PROCEDURE ins(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); COMMIT; END $$")
	var shipped atomic.Int32
	peer := shipCounter{&fakePeer{c: c, t: t}, &shipped}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	for _, q := range []string{"DO $$ BEGIN CALL ins(1); END $$", "DO $x$ BEGIN CALL ins(1); END $x$ LANGUAGE plpgsql"} {
		d := dialRawDSN(t, c.DSN(c.Database()))
		d.fe.Send(&pgproto3.Query{String: q})
		d.fe.Flush()
		want := d.replies()
		c.Exec(t, "TRUNCATE acct")
		shipped.Store(0)
		r := dialRaw(t, s)
		r.fe.Send(&pgproto3.Query{String: q})
		r.fe.Flush()
		if got := r.replies(); got != want {
			t.Errorf("%s: %s, want %s", q, got, want)
		}
		if n := shipped.Load(); n != 1 || rowCount(t, c, "true") != 1 {
			t.Errorf("%s: %d waits for the peer, %d rows; want 1, 1", q, n, rowCount(t, c, "true"))
		}
		c.Exec(t, "TRUNCATE acct")
	}
}
