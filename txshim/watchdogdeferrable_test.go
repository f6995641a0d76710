package txshim

import (
	"testing"
	"time"
)

// TestApplyWatchdogDeferrableDefaults: the apply's watchdog, which ends the sessions that
// block an apply on the peer, ran its query in a transaction of the peer database's defaults:
// under SERIALIZABLE, READ ONLY and DEFERRABLE ones (ALTER DATABASE … SET, for the backup
// site's own reporting applications) it waited for a safe snapshot — for the serializable
// read-write transaction it was there to end — and gave up after its 2 s on every pass: the
// dual commit waited behind the blocker until the commit's time was out. It reads READ
// COMMITTED.
func TestApplyWatchdogDeferrableDefaults(t *testing.T) {
	t.Parallel()
	p := startAcctPair(t)
	for _, set := range []string{`default_transaction_isolation = serializable`, `default_transaction_deferrable = on`, `default_transaction_read_only = on`} {
		p.peer.Exec(t, `ALTER DATABASE app SET `+set)
	}
	s := startShipper(t, p)
	ctx := capCtx(t, 30*time.Second)
	blocker := p.peer.Open(t, "app") // of the new defaults
	bc, err := blocker.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	for _, q := range []string{"BEGIN READ WRITE", "UPDATE acct SET balance = -1 WHERE id = 1"} {
		if _, err := bc.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance + 5 WHERE id = 1`)
	if _, err := bc.ExecContext(ctx, "COMMIT"); err == nil {
		t.Error("the blocking transaction committed after the apply")
	}
	if b := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`); b != 105 {
		t.Errorf("balance on the peer = %d, want 105", b)
	}
}
