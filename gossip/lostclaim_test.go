package gossip

import (
	"testing"
	"time"
)

// TestDecideSkipsLostSiteClaim: without a witness, b claimed term 7 and was then lost from a's
// view (the link between the sites cut): its claim may have settled and b be master of term 7
// out of sight. a takes over, but not term 7: two masters of one term defeat the databases' term
// fencing (a term older than the database's is refused, the same one is not) and the split-brain
// check, which looks for a newer term (DESIGN §3). It takes the term past b's claim
// (TestModel "two sites with partitions converge", seed 1454: a promoted term 7 after it had
// seen b claim term 7, and both were master of term 7).
func TestDecideSkipsLostSiteClaim(t *testing.T) {
	t.Parallel()
	lost := t0.Add(time.Hour - time.Minute)
	v := view("a", mem("a", 1, record(6, "a", true)), mem("b", 2, record(6, "a", true), claim(7), dead(lost)))
	v.Settle = 250 * time.Millisecond
	if got := Decide(v); got.Kind != Claim || got.Term != 8 {
		t.Fatalf("a, b lost while it claimed term 7: %+v, want a claim of term 8", got)
	}
	// Its claim of term 8 settled: a promotes term 8.
	v.Members[0].Claim, v.ClaimedAt = 8, t0
	if got := Decide(v); got.Kind != Promote || got.Term != 8 {
		t.Fatalf("a, its claim of term 8 settled: %+v, want promote term 8", got)
	}
	// Without the two-step promotion too.
	v.Members[0].Claim, v.Settle = 0, 0
	if got := Decide(v); got.Kind != Promote || got.Term != 8 {
		t.Fatalf("a without settle, b lost while it claimed term 7: %+v, want promote term 8", got)
	}
	// A lost site's claim of a term already taken (older than the one a would take) changes nothing.
	v.Members[1].Claim = 6
	if got := Decide(v); got.Kind != Promote || got.Term != 7 {
		t.Fatalf("a, b lost while it claimed term 6: %+v, want promote term 7", got)
	}
}
