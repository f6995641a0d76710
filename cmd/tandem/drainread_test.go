package main

import (
	"context"
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
	client, _ := serveShim(t, d)
	bound := shortDrain(t, 4*time.Second)
	read := runActive(t, ctx, d, "SELECT pg_sleep($1) AS long_report", func() error {
		_, err := client.ExecContext(ctx, `SELECT pg_sleep($1) AS long_report`, (bound + 5*time.Second).Seconds())
		return err
	})
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
