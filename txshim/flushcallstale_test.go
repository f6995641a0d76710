package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFlushedCallStale: a procedure sent before its request's Sync that waited at the commit
// gate (a hold) while the site gave up its role is refused (25006), commits nothing, and the
// session leaves the gate.
func TestFlushedCallStale(t *testing.T) {
	t.Parallel()
	fl := &pgproto3.Flush{}
	sy := &pgproto3.Sync{}
	for n, shape := range []struct {
		before, held, after []xstep
	}{
		{nil, []xstep{xmsgs("E", "CALL p(1)", fl)}, []xstep{xmsgs("Z", sy)}},
		{[]xstep{xmsgs("C", "SELECT 1", fl)}, []xstep{xmsgs("E", "CALL p(1)", fl)}, []xstep{xmsgs("Z", "CALL p(2)", sy)}},
		{nil, []xstep{xmsgs("Z", "SELECT 1", "CALL p(1)", sy)}, nil},
	} {
		c := testCluster(t)
		c.Exec(t, installSQL)
		c.Exec(t, `CREATE PROCEDURE p(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`)
		s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeDual, 1)
		ctx := capCtx(t, 30*time.Second)
		r := dialRaw(t, s)
		r.t = t
		out := r.runSteps(shape.before)
		release, err := s.HoldCommits(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan string, 1)
		go func() { done <- r.runSteps(shape.held) }()
		time.Sleep(500 * time.Millisecond)
		s.SetMode(ModeReadOnly, 1)
		release()
		out += "\n" + <-done
		out += "\n" + r.runSteps(shape.after)
		r.conn.Close()
		rows := rowCount(t, c, "true")
		t.Logf("shape %d: %s; %d rows", n, out, rows)
		if rows != 0 {
			t.Errorf("shape %d: %d rows committed after the site gave up its role", n, rows)
		}
		waitForLong(t, "the gate left", 10*time.Second, func() bool {
			a, sl, o, orph := s.gate.counts()
			return a == 0 && sl == 0 && o == 0 && orph == 0
		})
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if release, err := s.HoldCommits(hctx); err != nil {
			t.Errorf("shape %d: hold after: %v", n, err)
		} else {
			release()
		}
		cancel()
	}

	// The site gives up its role between a procedure sent before the Sync (counted in the gate)
	// and a later one of the same request: that one must not commit either.
	for n, after := range [][]xstep{
		{xmsgs("Z", "CALL p(2)", sy)},
		{xmsgs("", "CALL p(2)", fl), xmsgs("Z", sy)},
	} {
		c := testCluster(t)
		c.Exec(t, installSQL)
		c.Exec(t, `CREATE PROCEDURE p(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`)
		s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeDual, 1)
		r := dialRaw(t, s)
		r.t = t
		out := r.runSteps([]xstep{xmsgs("C", "CALL p(1)", fl)})
		s.SetMode(ModeReadOnly, 1)
		out += "\n" + r.runSteps(after)
		r.conn.Close()
		t.Logf("later %d: %s; rows %d", n, out, rowCount(t, c, "id = 2"))
		if rowCount(t, c, "id = 2") != 0 {
			t.Errorf("later %d: a procedure committed after the site gave up its role", n)
		}
	}
}
