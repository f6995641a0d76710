package gossip

import "testing"

// TestVoteNotAgainstLiveMaster: the witness sees site b, master of term 2, alive; site a,
// which does not see b yet (b just came back: a's view of it lags), adopted b's record from the
// witness and claims term 3. A vote for a's claim would make a master beside b (DESIGN §3: with
// a witness never two masters), so the witness keeps its vote, as b itself does (a master votes
// only for itself). Found by TestModel with more seeds (GOSSIP_MODEL_SEEDS=150, "witness with
// partitions": b promoted to term 2 with the witness's vote, the witness voted for a's term 3
// 0.3 s later, and a promoted beside b). Once b releases, or is lost, the vote goes to a.
func TestVoteNotAgainstLiveMaster(t *testing.T) {
	t.Parallel()
	a := mem("a", 1, record(2, "b", true), claim(3), votes(3, "a"))
	b := mem("b", 2, record(2, "b", true), role(RoleMaster), votes(2, "b"))
	w := wit("w", record(2, "b", true), votes(2, "b"))
	if vt, vf := Vote(view("w", w, a, b), true); vt != 2 || vf != "b" {
		t.Fatalf("the witness voted for %s in term %d while it sees b, master of term 2, alive", vf, vt)
	}
	// A master handing over (released) or lost leaves the vote free.
	released := mem("b", 2, record(2, "b", true), releasedTerm(2, ""), votes(2, "b"))
	if vt, vf := Vote(view("w", w, a, released), true); vt != 3 || vf != "a" {
		t.Fatalf("b released term 2: the witness should vote for a in term 3, got %s in %d", vf, vt)
	}
	lost := mem("b", 2, record(2, "b", true), role(RoleMaster), votes(2, "b"), dead(t0))
	if vt, vf := Vote(view("w", w, a, lost), true); vt != 3 || vf != "a" {
		t.Fatalf("b is lost: the witness should vote for a in term 3, got %s in %d", vf, vt)
	}
}
