package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// gateCounts reads the commit gate's counters.
func (g *commitGate) counts() (active, slow, owners, orphans int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active, g.slow, len(g.owners), len(g.orphans)
}

// TestFlushedCallGateCounts: however a request with a procedure sent before its Sync ends — its
// Sync, a Terminate, a protocol error, the client gone in a COPY, a drain that ends it — the
// session leaves the commit gate exactly once: the counters come back to zero, never below.
func TestFlushedCallGateCounts(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE gc(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; PERFORM pg_sleep(0.3); END $$`)
	c.Exec(t, `CREATE PROCEDURE gf(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; RAISE EXCEPTION 'after commit'; END $$`)
	ctx := capCtx(t, 120*time.Second)
	settle := func(t *testing.T, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, sl, o, orph := s.gate.counts()
			if a < 0 || sl < 0 {
				t.Fatalf("%s: gate counters below zero: active %d slow %d", what, a, sl)
			}
			if a == 0 && sl == 0 && o == 0 && orph == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: gate not left: active %d slow %d owners %d orphans %d", what, a, sl, o, orph)
			}
			time.Sleep(20 * time.Millisecond)
		}
		hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		release, err := s.HoldCommits(hctx)
		if err != nil {
			t.Fatalf("%s: hold: %v", what, err)
		}
		release()
		if a, sl, o, _ := s.gate.counts(); a != 0 || sl != 0 || o != 0 {
			t.Fatalf("%s: after the hold: active %d slow %d owners %d", what, a, sl, o)
		}
	}
	id := 100
	call := func(r *rawSession, proc string) {
		id++
		r.stmt(fmt.Sprintf("CALL %s(%d)", proc, id))
	}
	cases := []struct {
		name string
		run  func(t *testing.T, r *rawSession)
	}{
		{"sync", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.flush('C')
			r.sync()
		}},
		{"twoParts", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.flush('C')
			call(r, "gc")
			r.flush('C')
			call(r, "gc")
			r.sync()
		}},
		{"failed", func(t *testing.T, r *rawSession) {
			call(r, "gf")
			r.flush('E')
			call(r, "gc")
			r.sendFlush()
			r.sync()
		}},
		{"terminate", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.sendFlush()
			r.fe.Send(&pgproto3.Terminate{})
			r.fe.Flush()
			r.toEnd()
		}},
		{"protocolError", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.sendFlush()
			r.fe.Send(&pgproto3.Query{String: "SELECT 1"})
			r.fe.Flush()
			r.toEnd()
		}},
		{"goneInCopy", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.stmt("COPY acct FROM STDIN")
			r.flush('G')
			r.conn.Close()
		}},
		{"gone", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.sendFlush()
			r.conn.Close()
		}},
		{"drained", func(t *testing.T, r *rawSession) {
			call(r, "gc")
			r.flush('C')
			dctx, cancel := context.WithTimeout(ctx, DrainEnd+time.Second)
			defer cancel()
			err := s.Drain(dctx)
			t.Logf("drain: %v", err)
			r.toEnd()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, s)
			defer r.conn.Close()
			r.conn.SetDeadline(time.Now().Add(20 * time.Second))
			tc.run(t, r)
			settle(t, tc.name)
		})
	}
}
