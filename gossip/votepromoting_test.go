package gossip

import "testing"

// TestVoteNotAgainstPromotion: site a won the votes for term 14 (its own and the witness's) and
// its promotion's work runs (it is master only once that is done); site b, whose view of a
// lags (a is not alive there), claims term 15. The witness, which sees a alive and taking term
// 14, must not vote for b's newer claim: b would promote beside a (DESIGN §3: with a witness
// never two masters), as a site that sees a's promotion waits for it (blockedBy). Found by
// TestModel's "slow promotions, witness with partitions" at seed 426. Once a is lost, or
// withdraws its claim, the vote goes to b.
func TestVoteNotAgainstPromotion(t *testing.T) {
	t.Parallel()
	a := mem("a", 1, record(12, "a", true), releasedTerm(12, ""), claim(14), votes(14, "a"))
	b := mem("b", 2, record(12, "a", true), claim(15), votes(15, "b"))
	w := wit("w", record(12, "a", true), votes(14, "a"))
	if vt, vf := Vote(view("w", w, a, b), true); vt != 14 || vf != "a" {
		t.Fatalf("the witness voted for %s in term %d while a, which won term 14's votes, is taking it", vf, vt)
	}
	lost := mem("a", 1, record(12, "a", true), releasedTerm(12, ""), claim(14), votes(14, "a"), dead(t0))
	if vt, vf := Vote(view("w", w, lost, b), true); vt != 15 || vf != "b" {
		t.Fatalf("a is lost: the witness should vote for b in term 15, got %s in %d", vf, vt)
	}
}
