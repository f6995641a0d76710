package txshim

import (
	"testing"
	"time"
)

// TestApplyTerminatesBlockerNamedAsApply: the watchdog knows the shipper's own apply sessions
// by their backend pids, not by application_name, which any client can set. A session on the
// peer that calls itself "tandem apply" and holds a row lock is a blocker like any other: it
// is terminated and the dual commit goes through. (When the watchdog spared every session
// whose name starts with "tandem apply", the apply waited behind it until the commit's
// deadline, and catch-up would never have finished.)
func TestApplyTerminatesBlockerNamedAsApply(t *testing.T) {
	t.Parallel()
	p := startAcctPair(t)
	s := startShipper(t, p)
	ctx := capCtx(t, 30*time.Second)
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"SET application_name = 'tandem apply'", "BEGIN", "UPDATE acct SET balance = -1 WHERE id = 1"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance + 5 WHERE id = 1`)
	t.Logf("dual commit through a row blocked by a session named as an apply took %v", time.Since(start))
	if _, err := blocker.ExecContext(ctx, "COMMIT"); err == nil {
		t.Error("the blocking transaction committed after the apply")
	}
	requireSame(t, p)
	if b := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`); b != 105 {
		t.Errorf("balance on the peer = %d, want 105", b)
	}
}
