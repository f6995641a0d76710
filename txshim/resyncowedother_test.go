package txshim

import (
	"testing"
	"time"
)

// TestResyncOwedClearedByOtherSite: site a's resync made its lost slot anew and was refused:
// the peer (site b's database) was marked owed a copy of a's tables. Then b took over (forced:
// a down), and b's resync copied b's tables onto a's database — what a's lost slot held is gone
// from there too, nothing is owed any more. The mark stayed on b's database: handed back to a,
// its catch-up refused for good (ErrNeedsResync, "a resync made the lost replication slot
// anew"), and the pair stayed unsynced until one more full copy.
func TestResyncOwedClearedByOtherSite(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)
	if err := Install(capCtx(t, 30*time.Second), "b", p.peer.DSN("app"), p.local.DSN("app"), quietLogger()); err != nil {
		t.Fatal(err)
	}
	refusedResyncAfterSlotLoss(t, p, sh)
	stop() // site a goes down

	// Site b takes over (term 2) and copies its tables onto a's database.
	b := NewShipper(ShipperConfig{Site: "b", LocalDSN: p.peer.DSN("app"), PeerDSN: p.local.DSN("app"), Conns: 1,
		OpTimeout: 2 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	b.SetTerm(2)
	stopB := runShipper(t, b)
	waitFor(t, "b's Shipper to run", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.running })
	if err := b.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync from b: %v", err)
	}
	if err := b.CatchUp(capCtx(t, 20*time.Second), nil); err != nil {
		t.Fatalf("CatchUp of b: %v", err)
	}
	p.peer.Exec(t, `INSERT INTO kv VALUES (3, 'from b')`)
	waitFor(t, "b's commit on a's database", func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM kv WHERE k = 3`) == 1
	})
	requireSame(t, p)
	b.SetBackup(true)
	stopB()

	// Handed back to a (term 3): both databases hold the same rows.
	a := pairShipper(p, 1, 2*time.Second)
	a.SetTerm(3)
	runShipper(t, a)
	if err := a.CatchUp(capCtx(t, 20*time.Second), nil); err != nil || !a.PeerSynced() {
		t.Fatalf("CatchUp of a, handed back after b copied its tables onto a's database = %v, synced %v; want synced", err, a.PeerSynced())
	}
	p.local.Exec(t, `INSERT INTO kv VALUES (4, 'from a again')`)
	waitFor(t, "a's commit on b's database", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 4`) == 1
	})
	requireSame(t, p)
}
