package txshim

import (
	"context"
	"testing"
	"time"
)

// TestIdleTimeoutsWhileHeld: a client that set idle_in_transaction_session_timeout (or
// idle_session_timeout) shorter than a hold of the commits (catch-up's tail, HoldCommits) lost
// its session when its commit (or procedure) came during the hold: its backend, idle in the
// transaction being committed (or outside one, before the CALL) while the shim waited at the
// commit gate, ended it with FATAL 25P03 (57P05), and the write PostgreSQL would have committed
// was lost. The shim now turns the timeout off for its wait; the client's values are as it set
// them after.
func TestIdleTimeoutsWhileHeld(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeDual, ModeSolo} {
		c := testCluster(t)
		c.Exec(t, installSQL)
		c.Exec(t, `CREATE PROCEDURE p(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 1) $$`)
		s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, mode, 1)
		ctx := capCtx(t, 30*time.Second)
		conn := s.connect(t)
		if _, err := conn.Exec(ctx, "SET idle_in_transaction_session_timeout = '500ms'; SET idle_session_timeout = '500ms'"); err != nil {
			t.Fatal(err)
		}
		for i, q := range []string{"INSERT INTO acct VALUES (1, 1)", "BEGIN; INSERT INTO acct VALUES (2, 1); COMMIT", "CALL p(3)", "BEGIN; INSERT INTO acct VALUES (4, 1); COMMIT AND CHAIN; INSERT INTO acct VALUES (5, 1); COMMIT"} {
			release, err := s.HoldCommits(ctx)
			if err != nil {
				t.Fatal(err)
			}
			go func() { time.Sleep(1200 * time.Millisecond); release() }()
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%v, statement %d: %s: %v", mode, i, q, err)
			}
		}
		// At once: idle for the timeout, the session ends (a 200 ms timeout, and the row count
		// on another connection first, made that happen on a loaded machine).
		for _, set := range []string{"idle_in_transaction_session_timeout", "idle_session_timeout"} {
			var v string
			if err := conn.QueryRow(ctx, "SHOW "+set).Scan(&v); err != nil || v != "500ms" {
				t.Errorf("%v: %s %q (%v), want 500ms", mode, set, v, err)
			}
		}
		// In a transaction the client's timeout holds as it set it.
		if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1200 * time.Millisecond)
		if _, err := conn.Exec(context.Background(), "SELECT 1"); err == nil {
			t.Errorf("%v: after 1.2 s idle in a transaction: the session goes on, want it ended", mode)
		}
		if n := rowCount(t, c, "true"); n != 5 {
			t.Errorf("%v: %d rows committed, want 5", mode, n)
		}
	}
}
