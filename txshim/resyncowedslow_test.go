package txshim

import (
	"testing"
	"time"
)

// TestCatchUpOwedCopyPeerSlow: catch-up asks the peer whether it is owed a copy (checkCopyOwed)
// and took any failure to answer — the query cut off at OpTimeout behind a lock on
// tandem.decisions, say — for "not owed": the catch-up went on, shipped from the new slot's
// start and called the peer synced without what the lost slot held.
func TestCatchUpOwedCopyPeerSlow(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)
	refusedResyncAfterSlotLoss(t, p, sh)
	stop() // the sidecar restarts

	sh2 := pairShipper(p, 1, 2*time.Second)
	sh2.SetTerm(1)
	runShipper(t, sh2)
	ctx := capCtx(t, 40*time.Second)
	holder, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `BEGIN; LOCK TABLE tandem.decisions IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sh2.CatchUp(ctx, nil) }()
	owedQuery := func() int {
		var n int
		_ = p.pdb.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT EXISTS (SELECT 1 FROM tandem.decisions WHERE gid = $1)%'`).Scan(&n)
		return n
	}
	waitForLong(t, "catch-up to ask the peer whether it is owed a copy", 20*time.Second, func() bool { return owedQuery() == 1 })
	time.Sleep(3 * time.Second) // past OpTimeout (2s): the question is cut off (its backend waits on, closed)
	if _, err := holder.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if err == nil || sh2.PeerSynced() {
		var n int
		_ = p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = 2`).Scan(&n)
		t.Fatalf("CatchUp with the peer slow to say it is owed a copy = %v, synced %v (the peer holds row 2 %d times); want an error", err, sh2.PeerSynced(), n)
	}
}
