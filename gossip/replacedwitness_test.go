package gossip

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestNodeReplacedWitnessKeepsFailover: the witness is replaced (stopped gracefully — it
// leaves the cluster — and a new one started under another name, another host). The sites
// keep running: the cluster is two sites and one witness, as configured. The site that then
// loses its peer must keep (or take) the master role with the new witness's vote: 2 of 3
// voters. Counted against every member ever known (the old witness included, forever, since it
// is never forgotten), it saw 2 of 4 and the master fenced itself on a single site failure.
//
// The members' failure detection tolerates a loaded machine (steady), the set-up waits are
// generous (a witness votes only fence_delay after its start), and the master is watched from
// the moment it sees its peer lost — the moment it would fence — rather than for a fixed time
// after the kill, which on a loaded machine could end before it noticed anything.
func TestNodeReplacedWitnessKeepsFailover(t *testing.T) {
	t.Parallel()
	addrA, addrB, _, cfgA, cfgB, cfgW := witnessTrio(t)
	w, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{steady: true, within: 30 * time.Second})

	w.stop() // graceful: memberlist's Leave
	waitFor(t, 20*time.Second, "the sites see the old witness gone", func() bool { return !sees(a, "witness") && !sees(b, "witness") })

	cfgW2 := siteConfig(t, "witness2", 0, freeAddr(t), addrA, addrB)
	cfgW2.Kind = config.KindWitness
	cfgW2.Gossip.Witness, cfgW2.Gossip.FenceDelay = true, time.Second
	runSteady(t, cfgW2, Options{})
	waitFor(t, 20*time.Second, "the sites see the new witness", func() bool { return sees(a, "witness2") && sees(b, "witness2") })

	// The backup's host dies: the master sees itself and the new witness, 2 of 3 voters.
	b.kill()
	waitFor(t, 20*time.Second, "site1 sees site2 lost", func() bool { return !sees(a, "site2") })
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := a.State(); s.Role != RoleMaster {
			t.Fatalf("site1, with site2 lost and the new witness alive, is %s: %s", s.Role, s.Reason)
		}
	}
}

// TestDecideLeftMemberNotCounted: a member that said it was leaving and is gone (the old
// witness of TestNodeReplacedWitnessKeepsFailover) no longer counts among the members known;
// one that is gone without saying so (a stray witness cut off) still does.
func TestDecideLeftMemberNotCounted(t *testing.T) {
	t.Parallel()
	leaving := func(m *Member) { m.Leaving = true }
	gone := dead(t0.Add(time.Hour - time.Minute))
	v := view("a",
		mem("a", 1, role(RoleMaster), record(5, "a", true)),
		mem("b", 2, record(5, "a", true), gone),
		wit("w2", record(5, "a", true)),
		wit("w", record(5, "a", true), leaving, gone))
	if a := Decide(v); a.Kind == Fence {
		t.Errorf("master a, seeing a and the new witness, fences: %s", a.Reason)
	}
	v.Members[3].Leaving = false
	if a := Decide(v); a.Kind != Fence {
		t.Errorf("master a, with a witness gone unannounced, does %v (%s); want Fence", a.Kind, a.Reason)
	}
}
