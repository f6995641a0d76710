package gossip

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestSplitBrainSameTerm: cut off from each other without a witness, both sites may take one
// term (DESIGN §3 split brain; TestModel "two sites with partitions converge", seed 1454). A
// site whose record says it committed alone in term T (master of T, peer_synced = false) and
// that sees another site's record of T naming another master is in split brain in T, as it is
// when it sees a newer term taken elsewhere: the other master wrote in T without its commits.
func TestSplitBrainSameTerm(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		v    View
		want uint64
	}{
		{"solo master meets another master of its term",
			view("a", mem("a", 1, role(RoleMaster), record(7, "a", false)), mem("b", 2, role(RoleMaster), record(7, "b", true))), 7},
		{"solo site, released since, meets another master of its term",
			view("a", mem("a", 1, record(7, "a", false), releasedTerm(7, "")), mem("b", 2, role(RoleMaster), record(7, "b", false))), 7},
		{"solo master meets another site's record of its term, that site down",
			view("b", mem("a", 1, dead(t0), record(7, "a", true)), mem("b", 2, role(RoleMaster), record(7, "b", false))), 7},
		{"synced master meets another master of its term",
			view("a", mem("a", 1, role(RoleMaster), record(7, "a", true)), mem("b", 2, role(RoleMaster), record(7, "b", false))), 0},
		{"solo master, its backup holds its record",
			view("a", mem("a", 1, role(RoleMaster), record(7, "a", false)), mem("b", 2, record(7, "a", false))), 0},
	}
	for _, c := range cases {
		if got := SplitBrain(c.v); got != c.want {
			t.Errorf("%s: SplitBrain = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSplitBrainSameTermStopsFailback: b, master of term 7, committed alone in it while a
// took term 7 too (both cut off, no witness), and is in split brain in term 7; a, better and
// qualified for failback_delay, lacks what b committed alone, and b's record of term 7 is its
// own word, so rule 2 does not stop a. Automatic failback stops (DESIGN §3) and b says why,
// as failback to a site in split brain does; a switchover still hands over.
func TestSplitBrainSameTermStopsFailback(t *testing.T) {
	t.Parallel()
	ready := t0.Add(time.Hour - time.Minute) // qualified for longer than FailbackDelay
	a := mem("a", 1, record(7, "a", true), readySince(ready))
	b := mem("b", 2, role(RoleMaster), record(7, "b", false), readySince(ready), func(m *Member) { m.SplitBrain = 7 })
	v := view("b", a, b)
	got := Decide(v)
	if got.Kind != None || !strings.Contains(got.Reason, "split brain") || !strings.Contains(got.Reason, "term 7") {
		t.Fatalf("failback from b, in split brain in its own term 7: %+v, want no action saying it stopped", got)
	}
	v.Switchover = "a"
	if got := Decide(v); got.Kind != Release || got.To != "a" {
		t.Fatalf("switchover from b, in split brain in its own term 7: %+v, want release to a", got)
	}
	// Cleared by an operator: failback goes on.
	v.Switchover = ""
	v.Members[1].SplitBrain = 0
	if got := Decide(v); got.Kind != Release || got.To != "a" {
		t.Fatalf("failback once cleared: %+v, want release to a", got)
	}
}

// TestNodeSplitBrainSameTermReported: site2 committed alone in term 7 (its record: master of
// 7, peer_synced = false) and, the link back, sees site1 master of term 7 too. The node notes
// the split brain as it does one in two terms: its status says so (State.SplitBrain), and its
// meta stops failback to it, until an operator clears it.
func TestNodeSplitBrainSameTermReported(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 7, Master: "site2", PeerSynced: false, Seq: 1}}
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store})
	site1 := &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: true, DBReachable: true, Role: RoleMaster,
		Record: TermRecord{Term: 7, Master: "site1", PeerSynced: true, Seq: 1}}, hasMeta: true, mlAlive: true, alive: true, since: time.Now()}
	n.mu.Lock()
	n.meta.ServerHealthy = true
	n.peers["site1"] = site1
	n.mu.Unlock()
	for range 3 {
		n.decide(t.Context(), ml)
	}
	if st := n.State(); st.SplitBrain != 7 {
		t.Fatalf("site2 committed alone in term 7, site1 master of term 7 too: status says split brain %d, want 7 (%s: %s)",
			st.SplitBrain, st.Role, st.Decision)
	}
	if term, err := n.ClearSplitBrain(); err != nil || term != 7 {
		t.Fatalf("ClearSplitBrain = %d, %v; want 7", term, err)
	}
	n.decide(t.Context(), ml)
	if st := n.State(); st.SplitBrain != 0 {
		t.Fatalf("split brain %d again after an operator cleared it", st.SplitBrain)
	}
}

// TestNodeSplitBrainSameTermRefusal: site2 committed alone in term 7 and, the other site's
// sidecar out of sight, learns from the other site's database that site1 took term 7 too (a
// refusal, PromoteRefusal, naming site1's record of term 7): the split brain is noted there as
// it is when the refusal names a newer term.
func TestNodeSplitBrainSameTermRefusal(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 7, Master: "site2", PeerSynced: false, Seq: 1}}
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			return &PromoteRefusal{Record: TermRecord{Term: 7, Master: "site1"}, Err: errors.New("site1 went on alone in term 7")}
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	n.Force()
	for range 3 {
		n.decide(t.Context(), ml)
	}
	if st := n.State(); st.SplitBrain != 7 || st.Role == RoleMaster {
		t.Fatalf("site2 committed alone in term 7, refused for site1's record of term 7: %s, split brain %d, want 7 (%s)",
			st.Role, st.SplitBrain, st.Decision)
	}
}

// TestSplitBrainOlderMarkFailback pins what TestModel's convergence check counts on (seed 40119
// of "two sites with partitions converge"): a master's split-brain mark of an older term than
// the one it holds stops no failback; its own record of its term saying peer_synced = false,
// which the better site holds too (it acknowledged that the master went on alone), does — that
// site lacks what the master committed alone and is not current (rule 2) until it catches up.
func TestSplitBrainOlderMarkFailback(t *testing.T) {
	t.Parallel()
	ready := t0.Add(time.Hour - time.Minute) // qualified for longer than FailbackDelay
	oldMark := func(m *Member) { m.SplitBrain = 7 }
	v := view("b", mem("a", 1, record(20, "b", true), readySince(ready)),
		mem("b", 2, role(RoleMaster), record(20, "b", true), readySince(ready), oldMark))
	if got := Decide(v); got.Kind != Release || got.To != "a" {
		t.Fatalf("failback from b, master of term 20 with a split-brain mark of term 7: %+v, want release to a", got)
	}
	v = view("b", mem("a", 1, record(20, "b", false)),
		mem("b", 2, role(RoleMaster), record(20, "b", false), readySince(ready), oldMark))
	v.Stamp(map[string]time.Time{"a": ready, "b": ready})
	if got := Decide(v); got.Kind != None {
		t.Fatalf("failback from b, gone on alone in term 20, to a that holds that record: %+v, want none", got)
	}
	if ok, why := v.ready(v.Members[0]); ok || !strings.Contains(why, "not current") {
		t.Fatalf("a, holding b's record of term 20 with peer_synced = false: ready %v (%q), want not current", ok, why)
	}
}
