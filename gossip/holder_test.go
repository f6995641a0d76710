package gossip

import (
	"testing"
	"time"
)

// TestDecideHolderBothViews: the master of the newest term that lost the role for a moment
// (View.holder) against a better site, decided from each side on the same members: exactly the
// one site the rules name takes the next term, the other waits (never both), and the better
// site is not kept waiting for a holder that cannot serve or released its term. Its peer
// not synced, the better site lacks its commits (DESIGN §3 rule 2) and never takes over from
// it. A peer of an earlier version publishes no failback mode (Meta.ManualFailback) and no
// Boot: it is taken for failback = "auto".
func TestDecideHolderBothViews(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	manual := func(m *Member) { m.ManualFailback = true }
	tests := []struct {
		name   string
		a, b   Member // a is the better site, b held term 2
		manual bool   // View.ManualFailback of both sites
		winner string // "" nobody promotes
	}{
		{"auto, a ready 5s: b takes control back",
			mem("a", 1, record(2, "b", true), readySince(now.Add(-5*time.Second))),
			mem("b", 2, record(2, "b", true), readySince(t0)), false, "b"},
		{"auto, a ready past failback_delay: a",
			mem("a", 1, record(2, "b", true), readySince(now.Add(-time.Minute))),
			mem("b", 2, record(2, "b", true), readySince(t0)), false, "a"},
		{"manual, a ready for long: b",
			mem("a", 1, record(2, "b", true), readySince(t0), manual),
			mem("b", 2, record(2, "b", true), readySince(t0), manual), true, "b"},
		{"manual, holder unhealthy: a",
			mem("a", 1, record(2, "b", true), readySince(t0), manual),
			mem("b", 2, record(2, "b", true), unhealthy, manual), true, "a"},
		{"auto, holder database unreachable: a",
			mem("a", 1, record(2, "b", true), readySince(now.Add(-time.Second))),
			mem("b", 2, record(2, "b", true), noDB), false, "a"},
		{"manual, holder released term 2: a",
			mem("a", 1, record(2, "b", true), readySince(t0), manual),
			mem("b", 2, record(2, "b", true), readySince(t0), manual, releasedTerm(2, "")), true, "a"},
		{"auto, holder not synced: b (a lacks its commits)",
			mem("a", 1, record(2, "b", true), readySince(t0)),
			mem("b", 2, record(2, "b", false), readySince(t0)), false, "b"},
		{"manual, holder not synced: b",
			mem("a", 1, record(2, "b", true), readySince(t0), manual),
			mem("b", 2, record(2, "b", false), readySince(t0), manual), true, "b"},
		{"old holder (no failback mode published), a ready past failback_delay: a",
			mem("a", 1, record(2, "b", true), readySince(t0), manual),
			mem("b", 2, record(2, "b", true), readySince(t0)), true, "a"},
		{"old holder (no failback mode published), a ready 5s: b",
			mem("a", 1, record(2, "b", true), readySince(now.Add(-5*time.Second)), manual),
			mem("b", 2, record(2, "b", true), readySince(t0)), true, "b"},
	}
	for _, tc := range tests {
		promoted := ""
		for _, self := range []string{"a", "b"} {
			v := with(view(self, tc.a, tc.b), func(v *View) { v.ManualFailback = tc.manual })
			act := Decide(v)
			switch act.Kind {
			case Promote:
				if act.Term != 3 {
					t.Errorf("%s: %s promotes term %d, want 3", tc.name, self, act.Term)
				}
				if promoted != "" {
					t.Errorf("%s: %s and %s both promote term %d", tc.name, promoted, self, act.Term)
				}
				promoted = self
			case None:
			default:
				t.Errorf("%s: %s: %v (%s), want promote or wait", tc.name, self, act.Kind, act.Reason)
			}
			t.Logf("%s: %s: %v %q", tc.name, self, act.Kind, act.Reason)
		}
		if promoted != tc.winner {
			t.Errorf("%s: %q promoted, want %q", tc.name, promoted, tc.winner)
		}
	}
}
