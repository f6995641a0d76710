package main

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"
)

// TestHandoverDrainEndsRead: a read in flight through the shim at a handover, longer than the
// drain's bound. Since 2d7fa51 the shim's Drain waits for every statement sent while the mode
// took writes (one the lexer took for a read may write) and ends it at its bound, and it then
// said the wait ran out: the release recorded peer_synced = false (DrainRanOut) and counted the
// term as committed alone in, so that the successor could not take the next term without a
// catch-up that has nothing to ship — a switchover that a report query happened to overlap
// failed to hand over cleanly. An ended statement rolled back whatever it had not committed,
// and what it committed before is a plain commit in the stream before the ship barrier's mark,
// which the barrier waits for: the release goes on as with nothing in flight.
func TestHandoverDrainEndsRead(t *testing.T) {
	d, _, _ := dualSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
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
	defer func(f func(time.Duration) time.Duration) { drainBound = f }(drainBound)
	drainBound = func(time.Duration) time.Duration { return 4 * time.Second }
	bound := drainBound(d.cfg.CommitTimeout)
	read := make(chan error, 1)
	go func() {
		_, err := client.ExecContext(ctx, `SELECT pg_sleep($1) AS long_report`, (bound + 5*time.Second).Seconds())
		read <- err
	}()
	for {
		var n int
		if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%long_report%' AND state = 'active' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case err := <-read:
			t.Fatalf("the read ended before the handover: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	start := time.Now()
	d.stepDown(ctx, 1)
	t.Logf("handover with a read in flight took %v (bound %v)", time.Since(start).Round(time.Millisecond), bound)
	if d.peerDowns() != 0 || d.shim.WentSolo(1) {
		t.Errorf("a handover with only a read in flight recorded peer_synced = false (downs %d, went solo %v): the successor cannot take the next term without a catch-up",
			d.peerDowns(), d.shim.WentSolo(1))
	}
	t.Logf("the read: %v", <-read)
	waitDrained(t, d)
}
