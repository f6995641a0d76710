package main

import (
	"context"
	"testing"
	"time"
)

// TestHandoverDrainRunsOutBarrier: a handover's drain whose bound runs out while something is
// still in flight through the shim (here a procedure that runs longer than the bound: the
// shim counts a CALL in its commit gate for its whole run) skipped the ship barrier, and
// recorded nothing: "released" said peer_synced = true while the peer lacked a write committed
// plainly before the handover (made straight on the local database, as a write the shim took
// for a read reaches it) — its database frozen, as in TestHandoverShipBarrier — and the
// procedure still running could commit more after the release, which the shipper, turned
// backup, no longer ships. The successor would take the next term without them. A drain that
// runs out now records peer_synced = false (and counts the term as committed alone in) before
// the release, as a failed barrier does.
func TestHandoverDrainRunsOutBarrier(t *testing.T) {
	d, peer, _ := dualSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.local.ExecContext(ctx, `CREATE PROCEDURE slow(s float8) LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(s); END $$`); err != nil {
		t.Fatal(err)
	}
	client, _ := serveShim(t, d)
	bound := shortDrain(t, 3*time.Second)
	// The CALL is under way through the shim (its backend sleeps).
	called := runActive(t, ctx, d, "CALL slow", func() error {
		_, err := client.ExecContext(ctx, `CALL slow($1)`, (bound + 5*time.Second).Seconds())
		return err
	})
	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Resume() })
	if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d.stepDown(ctx, 1)
	took := time.Since(start)
	t.Logf("handover with a procedure in flight and the peer frozen took %v (bound %v)", took.Round(time.Millisecond), bound)
	if d.peerDowns() == 0 || !d.shim.WentSolo(1) {
		t.Errorf("the handover's drain ran out with a procedure in flight and a row the peer lacks, and peer_synced = false was never recorded (downs %d, went solo %v): \"released\" says the peer has everything",
			d.peerDowns(), d.shim.WentSolo(1))
	}
	if took > bound+5*time.Second {
		t.Errorf("the handover took %v, more than the drain's bound %v", took, bound)
	}
	peer.Resume()
	<-called
	waitDrained(t, d)
}
