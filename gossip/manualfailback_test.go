package gossip

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestDecideManualHolderKeepsControl: with failback = "manual" the master of the newest term
// that lost the role for a moment (fenced, then backup again) takes control back, not the
// better site: DESIGN §3 hands control back to a better site only by tandem switchover. Both
// sites agree, since each reads the holder's own word; a holder that released its term (a
// switchover, a stop) or with failback = "auto" leaves it to the better site.
func TestDecideManualHolderKeepsControl(t *testing.T) {
	t.Parallel()
	manual := func(m *Member) { m.ManualFailback = true }
	a := mem("a", 1, record(6, "b", true))
	b := mem("b", 2, record(6, "b", true), manual)
	w := wit("w", record(6, "b", true))
	if got := Decide(view("a", a, b, w)); got.Kind == Promote || got.Kind == Claim || !strings.Contains(got.Reason, "failback is manual") {
		t.Errorf("better site a, holder b manual: %+v, want a wait naming the manual failback", got)
	}
	if got := Decide(view("b", a, b, w)); got.Kind != Claim && got.Kind != Promote {
		t.Errorf("holder b, manual: %+v, want it to take control back", got)
	}
	// With failback = "auto", until a has qualified for failback_delay.
	auto := mem("b", 2, record(6, "b", true))
	if got := Decide(view("a", a, auto, w)); got.Kind == Promote || got.Kind == Claim || !strings.Contains(got.Reason, "failback_delay") {
		t.Errorf("better site a, just ready, holder b auto: %+v, want a wait naming failback_delay", got)
	}
	if got := Decide(view("b", a, auto, w)); got.Kind != Claim && got.Kind != Promote {
		t.Errorf("holder b auto, a just ready: %+v, want b to take control back", got)
	}
	long := mem("a", 1, record(6, "b", true), readySince(t0))
	if got := Decide(view("a", long, auto, w)); got.Kind != Claim && got.Kind != Promote {
		t.Errorf("better site a, ready for an hour, holder b auto: %+v, want a to take control", got)
	}
	rel := mem("b", 2, record(6, "b", true), manual, releasedTerm(6, ""))
	if got := Decide(view("a", a, rel, w)); got.Kind != Claim && got.Kind != Promote {
		t.Errorf("better site a, holder b released its term: %+v, want a to take control", got)
	}
}

// TestNodeManualFailbackAfterFence: failback = "manual", site2 is master after a failover and
// site1 is back. site2 is cut off for a moment (it fences itself; site1 sees it alive
// throughout). Once the links are back control stays with site2: before, site2 came back as
// backup, site1 was the best site and took control without a switchover.
func TestNodeManualFailbackAfterFence(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	var cutA, cutB, cutW cutSet
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{within: 6 * time.Second, w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut}, b: Options{Cut: cutB.cut}})
	a.kill()
	waitFor(t, 8*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	a = run(t, cfgA, Options{Cut: cutA.cut})
	waitFor(t, 3*time.Second, "site1 back as backup", master(b, a))
	time.Sleep(2 * time.Second)
	if !master(b, a)() {
		t.Fatalf("failback = manual, yet site2 lost control before any cut: site1 %s of term %d (%s); site2 %s of term %d (%s)",
			a.State().Role, a.State().Term, a.State().Reason, b.State().Role, b.State().Term, b.State().Reason)
	}
	cutA.set(addrB)
	cutB.set(addrA, addrW)
	cutW.set(addrB)
	waitFor(t, 3*time.Second, "site2 fenced", func() bool { return b.State().Role == RoleFenced })
	cutA.set()
	cutB.set()
	cutW.set()
	waitFor(t, 10*time.Second, "site2 master again, site1 backup", master(b, a))
	time.Sleep(2 * time.Second)
	if !master(b, a)() {
		t.Errorf("failback = manual, yet site1 took control after site2's cut: site1 %s of term %d (%s)", a.State().Role, a.State().Term, a.State().Reason)
	}
}

// TestNodeFailbackDelayAfterFence: failback = "auto" with failback_delay 1 min; site2 is master
// after a failover and site1 has just come back. site2 is cut off for a moment (it fences
// itself). Once the links are back site2 takes control back: before, site1, the best site
// that qualified, took it at once, failback_delay or not.
func TestNodeFailbackDelayAfterFence(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	cfgA.Gossip.FailbackDelay, cfgB.Gossip.FailbackDelay = time.Minute, time.Minute
	var cutA, cutB, cutW cutSet
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{within: 6 * time.Second, w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut}, b: Options{Cut: cutB.cut}})
	a.kill()
	waitFor(t, 8*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	a = run(t, cfgA, Options{Cut: cutA.cut})
	back := time.Now()
	waitFor(t, 3*time.Second, "site1 back as backup", master(b, a))
	cutA.set(addrB)
	cutB.set(addrA, addrW)
	cutW.set(addrB)
	waitFor(t, 3*time.Second, "site2 fenced", func() bool { return b.State().Role == RoleFenced })
	cutA.set()
	cutB.set()
	cutW.set()
	waitFor(t, 10*time.Second, "site2 master again, site1 backup", master(b, a))
	time.Sleep(2 * time.Second)
	if !master(b, a)() {
		t.Errorf("site1 took control %s after it came back, failback_delay %s: %s", time.Since(back).Round(time.Millisecond), cfgB.Gossip.FailbackDelay, a.State().Reason)
	}
}
