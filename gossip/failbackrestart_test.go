package gossip

import (
	"testing"
	"time"
)

// TestNodeFailbackDelayAfterRestart: a better site that is killed and started again while the
// master counts its failback_delay was not ready throughout: the delay starts again from its
// restart. A quick restart at the same address is never seen as gone (memberlist keeps it
// alive, the direct probes do not fail three times in a row) and its first word already said
// it was healthy, so the master handed control back on the first process's schedule, to a
// site that had just crashed.
//
// The failback is timed from just before the restarted process is made, the earliest moment
// the master can know of it: earlier is a failback before failback_delay, whatever the load.
// The waits for the set-up (the takeover, the restarted site as backup) are generous, and the
// members' failure detection tolerates a loaded machine (steady): a peer taken for dead for a
// moment made the killed site master of a newer term, whose restart then took control back —
// no failback at all.
func TestNodeFailbackDelayAfterRestart(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.FailbackDelay, cfgB.Gossip.FailbackDelay = 4*time.Second, 4*time.Second
	a := runSteady(t, cfgA, Options{})
	b := runSteady(t, cfgB, Options{})
	waitFor(t, 30*time.Second, "site1 master", master(a, b))
	a.kill()
	waitFor(t, 30*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	a = runSteady(t, cfgA, Options{})
	waitFor(t, 30*time.Second, "site1 back as backup", master(b, a))
	time.Sleep(3 * time.Second) // most of failback_delay
	if !master(b, a)() {
		t.Fatalf("site2 is no longer master before site1's second kill: site1 %+v, site2 %+v", a.State(), b.State())
	}
	a.kill()
	restarted := time.Now()
	a = runSteady(t, cfgA, Options{})
	waitFor(t, 30*time.Second, "failback to site1", master(a, b))
	d := time.Since(restarted)
	t.Logf("failback %s after site1's restart", d.Round(time.Millisecond))
	if d < cfgB.Gossip.FailbackDelay {
		t.Errorf("failback %s after site1 restarted, before failback_delay %s", d.Round(time.Millisecond), cfgB.Gossip.FailbackDelay)
	}
}
