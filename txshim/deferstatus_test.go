package txshim

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDeferrableDefaultsCommitPreparedFails: the shim's own COMMIT PREPARED fails (here it is
// made to name no prepared transaction) in a session whose defaults are SERIALIZABLE, READ ONLY
// and DEFERRABLE. The shim asks pg_xact_status which way the transaction went, a query in an
// implicit transaction of those defaults: it waited for a safe snapshot, that is for the
// session's own transaction, still prepared, to end — until a resolver's pass, with the client
// waiting. It answers at once now: in doubt (08007), the resolver asked for a pass.
func TestDeferrableDefaultsCommitPreparedFails(t *testing.T) {
	t.Parallel()
	c, peer, _ := dualShim(t)
	kicked := make(chan struct{}, 1)
	s := startShim(t, c, Options{Peer: peer, OnInDoubt: func() {
		select {
		case kicked <- struct{}{}:
		default:
		}
	}}, ModeDual, 1)
	s.hooks.ownStep.set(func(q string) string {
		if strings.HasPrefix(q, "COMMIT PREPARED") {
			return "COMMIT PREPARED 'tandem_no_such_gid'"
		}
		return q
	})
	conn := s.connect(t)
	ctx := capCtx(t, 30*time.Second)
	if _, err := conn.Exec(ctx, "SET default_transaction_isolation = serializable; SET default_transaction_read_only = on; SET default_transaction_deferrable = on"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := conn.Exec(wctx, "BEGIN READ WRITE; INSERT INTO acct VALUES (1, 1); COMMIT")
	if pgCode(err) != "08007" || time.Since(start) > 3*time.Second {
		t.Errorf("after %v: %v, want 08007 at once", time.Since(start), err)
	}
	s.hooks.ownStep.clear()
	c.Exec(t, "COMMIT PREPARED '"+s.onlyPrepared(t)+"'")
}
