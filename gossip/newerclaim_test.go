package gossip

import (
	"testing"
	"time"
)

// TestDecideWaitsForNewerClaim: two sites, no witness. Site b released term 2 (its server
// failed), was healthy again with a not ready, and claims term 4 (a releaser skips the term it
// released): its claim settled, its promotion's work runs (seconds: the resolver, the catch-up),
// the term not yet published. Site a, back meanwhile, sees b's release of term 2 and its claim:
// it must not take term 3 beside it, claim settled or not; both would be master at once, of two
// terms (DESIGN §3: at no instant do two sites accept writes), until a saw term 4. Found by
// TestModel ("databases, slow promotions, two sites", seed 593: "two masters without
// partitions: [a b]"). Once b's claim is gone (it is master, or withdrew), a goes on.
func TestDecideWaitsForNewerClaim(t *testing.T) {
	t.Parallel()
	b := mem("b", 2, record(2, "b", true), releasedTerm(2, ""), claim(4))
	settle := func(v *View) { v.Settle, v.ClaimedAt = 250*time.Millisecond, v.Now.Add(-time.Second) }
	for _, a := range []Member{mem("a", 1, record(2, "b", true)), mem("a", 1, record(2, "b", true), claim(3))} {
		if got := Decide(with(view("a", a, b), settle)); got.Kind == Claim || got.Kind == Promote {
			t.Errorf("a (claim %d) while b claims term 4: %+v, want it to wait", a.Claim, got)
		}
	}
	to := mem("b", 2, record(2, "b", true), releasedTerm(2, "a"), claim(4))
	if got := Decide(with(view("a", mem("a", 1, record(2, "b", true)), to), settle)); got.Kind == Claim || got.Kind == Promote {
		t.Errorf("a, b released term 2 to it and claims term 4: %+v, want it to wait", got)
	}
	done := mem("b", 2, record(2, "b", true), releasedTerm(2, ""))
	if got := Decide(with(view("a", mem("a", 1, record(2, "b", true), claim(3)), done), settle)); got.Kind != Promote || got.Term != 3 {
		t.Errorf("a, b claims nothing: %+v, want it to take term 3", got)
	}
}
