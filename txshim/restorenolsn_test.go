package txshim

import (
	"errors"
	"testing"
	"time"
)

// TestPeerRestoredWithOldRowsWithoutLSN: as TestPeerRestoredFromOlderDump, but the peer
// also holds an old decision row of this site without lsn (an earlier version's, not pruned:
// written long before, while the other site was master, say). Since b7dbdd0 peerNewest says
// "" while such a row is there, and the catch-up onto the restored peer calls it synced.
func TestPeerRestoredWithOldRowsWithoutLSN(t *testing.T) {
	t.Parallel()
	d := startDualAcct(t, Options{OnPeerDown: func() bool { return true }}, 3)
	p, sh, shim, hold, ctx, conn := d.p, d.sh, d.shim, d.hold, d.ctx, d.conn
	p.peer.Exec(t, `INSERT INTO tandem.decisions (gid, at) VALUES ('`+plainGID("a", 7)+`', now() - interval '30 days')`)
	waitFor(t, "the first commit on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`) == 99
	})
	dump := dumpDB(t, p.peer, "app")
	for _, q := range []string{
		`INSERT INTO acct VALUES (10, 1000)`,
		`UPDATE acct SET balance = balance + 5 WHERE id = 2`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitForLong(t, "the dual commits on the peer", 20*time.Second, func() bool {
		return sh.Backlog() == 0 && queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	requireSame(t, p)
	restoreDB(t, p.peer, "app", dump)
	if _, err := conn.Exec(ctx, `INSERT INTO acct VALUES (11, 1100)`); err != nil {
		t.Fatalf("commit after the restore: %v", err)
	}
	waitFor(t, "solo mode", func() bool { m, _ := shim.Mode(); return m == ModeSolo })
	err := sh.CatchUp(capCtx(t, 30*time.Second), hold)
	diffs, verr := Verify(capCtx(t, 10*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if verr != nil {
		t.Fatal(verr)
	}
	if sh.PeerSynced() || !errors.Is(err, ErrNeedsResync) {
		t.Errorf("catch-up onto the restored peer: err %v, synced %v; want ErrNeedsResync (databases differ: %v)", err, sh.PeerSynced(), diffs)
	}
}
