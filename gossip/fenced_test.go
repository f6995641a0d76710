package gossip

import (
	"strings"
	"testing"
	"time"
)

// TestDecideFencedBetterSiteDoesNotHoldBack: with a witness, site a (the better site, master of
// term 5) lost the majority and fenced itself; b still sees a through memberlist (a's gossip
// gets out, its probes' answers do not: a one-way loss, or a's probes timing out under load)
// and reads its published "fenced". A fenced site does not see a majority (rule 3), so it does
// not qualify: b, which sees itself and the witness and cannot reach a either, must take over,
// not wait behind a as "preferred" for as long as memberlist keeps a alive. (A fenced a that
// b reaches sees b too and regains its majority at its next round: b may wait for it.)
func TestDecideFencedBetterSiteDoesNotHoldBack(t *testing.T) {
	for _, reach := range []struct {
		name string
		opt  func(*Member)
	}{{"a unreachable from b", unreachable}} {
		v := with(view("b",
			mem("a", 1, role(RoleFenced), record(5, "a", true), reach.opt),
			mem("b", 2, record(5, "a", true)),
			wit("w", record(5, "a", true))),
			func(v *View) { v.FenceDelay = 3 * time.Second })
		a := Decide(v)
		if a.Kind != Promote || a.Term != 6 {
			t.Errorf("%s: b's decision with a fenced: %v %d %q, want promote 6", reach.name, a.Kind, a.Term, a.Reason)
		}
		if strings.Contains(a.Reason, "preferred") {
			t.Errorf("%s: b waits behind a fenced site: %q", reach.name, a.Reason)
		}
	}
}
