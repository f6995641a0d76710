package gossip

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestNodeSwitchoverNotCarriedOver: failback = "manual". site1, master, is asked for a switchover
// to site2, whose server fails before the handover: it waits. site1 is cut off for a moment (it
// fences itself), site2, healthy again, takes over, and the links come back. Then site2's server
// fails and site1 takes over: it keeps control once site2 is healthy again. Before, the request
// made of site1 as master of an earlier term was kept through the fence (only a release dropped
// it) and carried out by this new mastership, failback manual or not (with "auto", before
// failback_delay): found by TestModel ("manual failback, witness with partitions", seed 1633:
// after the failover the site that had taken over handed control back at once).
func TestNodeSwitchoverNotCarriedOver(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	var cutA, cutB, cutW cutSet
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut}, b: Options{Cut: cutB.cut}})
	b.SetServerHealthy(false)
	waitFor(t, 5*time.Second, "site1 sees site2 unhealthy", func() bool {
		for _, m := range a.State().Members {
			if m.Site == "site2" {
				return !m.Healthy
			}
		}
		return false
	})
	// The request as Switchover takes it, accepted while site2 was ready a moment before.
	a.mu.Lock()
	a.switchTo, a.switchUntil = "site2", time.Now().Add(max(30*time.Second, 3*a.fenceDelay))
	a.mu.Unlock()
	a.poke()
	time.Sleep(200 * time.Millisecond)
	if s := a.State(); s.Role != RoleMaster {
		t.Fatalf("site1 %s before the cut, want master (the switchover waits for site2): %s", s.Role, s.Reason)
	}
	cutA.set(addrB, addrW)
	cutB.set(addrA)
	cutW.set(addrA)
	waitFor(t, 5*time.Second, "site1 fenced", func() bool { return a.State().Role == RoleFenced })
	b.SetServerHealthy(true)
	waitFor(t, 10*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	cutA.set()
	cutB.set()
	cutW.set()
	waitFor(t, 10*time.Second, "site2 master, site1 backup", master(b, a))
	b.SetServerHealthy(false)
	waitFor(t, 10*time.Second, "site1 master after site2's server failed", func() bool { return a.State().Role == RoleMaster })
	b.SetServerHealthy(true)
	waitFor(t, 5*time.Second, "site1 sees site2 healthy", func() bool {
		for _, m := range a.State().Members {
			if m.Site == "site2" {
				return m.Healthy
			}
		}
		return false
	})
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if s := a.State(); s.Role != RoleMaster {
			t.Fatalf("site1 %s after taking over, failback manual: %s (site2 %s)", s.Role, s.Reason, b.State().Role)
		}
	}
}
