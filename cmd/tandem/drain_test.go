package main

import (
	"context"
	"database/sql"
	"net/url"
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
	sctx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.shim.Serve(sctx) }()
	t.Cleanup(func() { // before dualSite2's cleanups (last-in first-out)
		stopServe()
		<-served
	})
	u, err := url.Parse(d.cfg.LocalDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = d.shim.Addr().String()
	client, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	// The drain's bound, short here: the test would otherwise wait out 37 s.
	defer func(f func(time.Duration) time.Duration) { drainBound = f }(drainBound)
	drainBound = func(time.Duration) time.Duration { return 3 * time.Second }
	bound := drainBound(d.cfg.CommitTimeout)
	called := make(chan error, 1)
	go func() {
		_, err := client.ExecContext(ctx, `CALL slow($1)`, (bound + 5*time.Second).Seconds())
		called <- err
	}()
	// The CALL is under way through the shim (its backend sleeps).
	for {
		var n int
		if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL slow%' AND state = 'active'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case err := <-called:
			t.Fatalf("CALL ended before the handover: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
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
