package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestResyncRefusedKeepsSlotLoss: a resync makes the lost slot anew first, then may refuse
// (the schemas differing, a transaction prepared on either database, the peer unreachable)
// or fail, or its process be killed, before the copy commits. The lost slot was the only sign
// that the peer lacks what it held: with a valid slot in its place, the next sidecar's catch-up
// shipped from the new slot's start and called the peer synced without those commits. The
// peer stays owed a copy until one commits.
func TestResyncRefusedKeepsSlotLoss(t *testing.T) {
	t.Parallel()
	p, sh, stop := shippingKV(t)
	refusedResyncAfterSlotLoss(t, p, sh)
	stop() // the sidecar restarts

	sh2 := pairShipper(p, 1, 2*time.Second)
	sh2.SetTerm(1)
	stop2 := runShipper(t, sh2)
	err := sh2.CatchUp(capCtx(t, 20*time.Second), nil)
	if !errors.Is(err, ErrNeedsResync) || sh2.PeerSynced() {
		var n int
		_ = p.pdb.QueryRow(`SELECT count(*) FROM kv WHERE k = 2`).Scan(&n)
		t.Fatalf("CatchUp after the refused resync = %v, synced %v (the peer holds row 2 %d times); want ErrNeedsResync", err, sh2.PeerSynced(), n)
	}
	if err := sh2.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)
	// Once copied, catch-up is free again after a restart.
	stop2()
	sh3 := pairShipper(p, 1, 2*time.Second)
	sh3.SetTerm(1)
	runShipper(t, sh3)
	if err := sh3.CatchUp(capCtx(t, 20*time.Second), nil); err != nil {
		t.Fatalf("CatchUp after the resync, by a new Shipper: %v", err)
	}
}

// refusedResyncAfterSlotLoss drops sh's slot, commits row 2 (which no slot then holds), and has
// sh's resync make the slot anew and then be refused (the schemas differing for a moment): the
// peer is owed a copy.
func refusedResyncAfterSlotLoss(t *testing.T, p *capPair, sh *Shipper) {
	t.Helper()
	dropSlot(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'in no slot')`)
	waitFor(t, "the Shipper to see the slot gone", func() bool { return sh.Err() != nil })
	p.local.Exec(t, `CREATE TABLE extra (id int PRIMARY KEY)`) // on the local database only
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err == nil || !strings.Contains(err.Error(), "schemas of the local and the peer database differ") {
		t.Fatalf("Resync with the schemas differing = %v, want a refusal naming it", err)
	}
	p.local.Exec(t, `DROP TABLE extra`)
}
