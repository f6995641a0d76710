package gossip

import (
	"testing"
	"time"
)

// TestDecideSameTermReleaseNoHandover: cut off from each other without a witness, both sites
// took term 7 (DESIGN §3 split brain); a's server then failed and it released its term 7, and
// the link healed: b is master of term 7, a is healthy again and qualified for failback_delay,
// and neither committed alone. a's release of term 7 handed nothing over — b holds term 7
// already and takes no newer one for it — so it must not keep control away from a for good:
// b hands back after failback_delay, and a then takes a term past 7
// (TestModel "two sites with partitions converge", seed 1454: "after healing: a is "backup",
// b is "master"; want a master, b backup").
func TestDecideSameTermReleaseNoHandover(t *testing.T) {
	t.Parallel()
	ready := t0.Add(time.Hour - time.Minute) // qualified for longer than FailbackDelay
	a := mem("a", 1, record(7, "a", true), releasedTerm(7, ""), readySince(ready))
	b := mem("b", 2, role(RoleMaster), record(7, "b", true), readySince(ready))
	if got := Decide(view("b", a, b)); got.Kind != Release || got.To != "a" {
		t.Fatalf("b, master of term 7, a (released its own term 7) qualified for failback_delay: %+v, want release to a", got)
	}
	if got := Decide(view("a", a, b)); got.Kind != None {
		t.Fatalf("a while b is master of term 7: %+v, want it to wait", got)
	}
	// b released its term 7 to a: a takes a term past the one both released.
	b.Role, b.Released, b.ReleasedTo = RoleBackup, 7, "a"
	v := view("a", a, b)
	v.Settle = 250 * time.Millisecond
	if got := Decide(v); got.Kind != Claim || got.Term <= 7 {
		t.Fatalf("a once b released term 7 to it: %+v, want a claim of a term past 7", got)
	}
	if got := Decide(view("b", a, b)); got.Kind != None {
		t.Fatalf("b once it released term 7 to a: %+v, want it to wait", got)
	}
}
