package gossip

import (
	"testing"
	"time"
)

// TestNodeFailbackDelayAfterSwitchoverFence: failback = "auto", failback_delay 6 s. site1,
// master and ready for longer than that, hands control to site2 by switchover. site2 is cut
// off for a moment (it fences itself) soon after. Once the links are back control stays with
// site2 until failback_delay has passed since its takeover: a better site that stayed ready
// throughout a handover does not get the role back at once (Node.promote clears readySince),
// whoever's view decides it.
//
// Right after the links are back site1 may still see site2 fenced and not answering its
// direct probes (one that failed during the cut counts until the next one answers; on a
// loaded machine that takes a while): such a site2 does not qualify (View.ready), and site1
// taking over then is failover of a fenced master, not failback — once site2 qualifies again
// site1 waits (TestDecide "fenced master out of reach"). site1's claims settle for 2 s, far
// longer than the view lags, so only a failback can make site1 master here, and
// failback_delay is long enough that one counted from the wrong moment still shows within it.
func TestNodeFailbackDelayAfterSwitchoverFence(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	const delay = 6 * time.Second
	cfgA.Gossip.FailbackDelay, cfgB.Gossip.FailbackDelay = delay, delay
	var cutA, cutB, cutW cutSet
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut}, b: Options{Cut: cutB.cut},
		tweakA: func(n *Node) { n.prof.settle = 2 * time.Second }})
	time.Sleep(delay + time.Second) // site1 has qualified for longer than failback_delay
	waitFor(t, 5*time.Second, "site1 master still", master(a, b))
	// site1 may have taken a newer term moments ago (a flap under load fenced it, and it took
	// the role again), which site2 has not adopted yet: it is not ready for a switchover until
	// it has.
	var err error
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		prev := err
		if err = a.Switchover("site2"); err == nil {
			if prev != nil {
				t.Logf("switchover accepted once site2 was ready (refused before: %v)", prev)
			}
			break
		}
		if time.Now().After(end) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "site2 master", master(b, a))
	takeover := time.Now()
	cutA.set(addrB)
	cutB.set(addrA, addrW)
	cutW.set(addrB)
	waitFor(t, 3*time.Second, "site2 fenced", func() bool { return b.State().Role == RoleFenced })
	cutA.set()
	cutB.set()
	cutW.set()
	for time.Since(takeover) < delay-500*time.Millisecond {
		if s := a.State(); s.Role == RoleMaster {
			t.Fatalf("site1 took control %s after site2's takeover by switchover, failback_delay %s: %s (site2 now %s)",
				time.Since(takeover).Round(time.Millisecond), delay, s.Reason, b.State().Role)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
