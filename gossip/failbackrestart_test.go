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
func TestNodeFailbackDelayAfterRestart(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.FailbackDelay, cfgB.Gossip.FailbackDelay = 4*time.Second, 4*time.Second
	a := run(t, cfgA, Options{})
	b := run(t, cfgB, Options{})
	waitFor(t, 5*time.Second, "site1 master", master(a, b))
	a.kill()
	waitFor(t, 5*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	a = run(t, cfgA, Options{})
	waitFor(t, 3*time.Second, "site1 back as backup", master(b, a))
	time.Sleep(3 * time.Second) // most of failback_delay
	a.kill()
	a = run(t, cfgA, Options{})
	d := waitFor(t, 10*time.Second, "failback to site1", master(a, b))
	t.Logf("failback %s after site1's restart", d.Round(time.Millisecond))
	if d < cfgB.Gossip.FailbackDelay {
		t.Errorf("failback %s after site1 restarted, before failback_delay %s", d.Round(time.Millisecond), cfgB.Gossip.FailbackDelay)
	}
}
