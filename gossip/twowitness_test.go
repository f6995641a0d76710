package gossip

import (
	"strings"
	"testing"
	"time"
)

// TestSecondWitnessNotAVoter: a second witness started by mistake (another witness file, or
// one witness joined to the cluster twice under two names) must not count as a voter. With
// three voters configured (two sites and one witness), a partition into {site a, witness w1}
// and {site b, witness w2} gave each side "2 of 3 voters": the master a kept its role and b,
// with w2's vote, took the next term too — two masters. Every member knows of all four from
// before the cut: the majority must be counted among the voters it knows of, and the stray
// witness named.
func TestSecondWitnessNotAVoter(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	gone := dead(now.Add(-time.Minute))
	// b's side: a (master of 5, synced) and w1 lost a minute ago; w2 votes for b's claim of 6.
	vb := view("b",
		mem("a", 1, role(RoleMaster), record(5, "a", true), gone),
		mem("b", 2, record(5, "a", true), claim(6), votes(6, "b")),
		wit("w1", record(5, "a", true), gone),
		wit("w2", record(5, "a", true), votes(6, "b")))
	vb.ClaimedAt = now.Add(-time.Minute)
	vb.FenceDelay = 3 * time.Second
	vb.MajoritySince = now.Add(-time.Minute)
	if a := Decide(vb); a.Kind == Promote {
		t.Errorf("site b, with the second witness's vote only, takes term %d: %s", a.Term, a.Reason)
	}
	// a's side: it keeps the role only with a majority of the voters it knows of.
	va := view("a",
		mem("a", 1, role(RoleMaster), record(5, "a", true)),
		mem("b", 2, record(5, "a", true), gone),
		wit("w1", record(5, "a", true)),
		wit("w2", record(5, "a", true), gone))
	a := Decide(va)
	if a.Kind != Fence {
		t.Errorf("master a, seeing a and w1 of four voters, does %v (%s); want Fence", a.Kind, a.Reason)
	}
	if !strings.Contains(a.Reason, "witness") {
		t.Errorf("reason %q does not name the second witness", a.Reason)
	}
}
