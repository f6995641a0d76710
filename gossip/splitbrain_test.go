package gossip

import (
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSplitBrain: a site whose record says it committed alone (master of T, peer_synced =
// false) and that sees a newer term taken by another site is in split brain (DESIGN §3); every
// other combination is not.
func TestSplitBrain(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		v    View
		want uint64
	}{
		{"solo master meets a newer master",
			view("a", mem("a", 1, role(RoleMaster), record(3, "a", false)), mem("b", 2, role(RoleMaster), record(4, "b", true))), 3},
		{"solo master, restarted, meets a newer master",
			view("a", mem("a", 1, record(3, "a", false)), mem("b", 2, role(RoleMaster), record(4, "b", false))), 3},
		{"newer term known only to the witness",
			view("a", mem("a", 1, record(3, "a", false)), mem("b", 2, dead(t0), record(3, "a", true)), wit("w", record(4, "b", true))), 3},
		{"synced master meets a newer master (plain failover)",
			view("a", mem("a", 1, record(3, "a", true)), mem("b", 2, role(RoleMaster), record(4, "b", true))), 0},
		{"solo master, peer on the same term",
			view("a", mem("a", 1, role(RoleMaster), record(3, "a", false)), mem("b", 2, record(3, "a", false))), 0},
		{"solo master alone",
			view("a", mem("a", 1, role(RoleMaster), record(3, "a", false))), 0},
		{"backup that holds another site's unsynced record",
			view("b", mem("a", 1, role(RoleMaster), record(4, "a", true)), mem("b", 2, record(3, "a", false))), 0},
		{"newer term that names this site (its own later term, adopted elsewhere)",
			view("a", mem("a", 1, record(3, "a", false)), mem("b", 2, record(4, "a", true))), 0},
		{"witness", view("w", wit("w", record(3, "w", false)), mem("b", 2, record(4, "b", true))), 0},
	}
	for _, c := range cases {
		if got := SplitBrain(c.v); got != c.want {
			t.Errorf("%s: SplitBrain = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestSplitBrainStopsFailback: the master does not hand control back to a better site that is
// in split brain, says why, and still does once that is cleared; a switchover still works.
func TestSplitBrainStopsFailback(t *testing.T) {
	t.Parallel()
	ready := t0.Add(time.Hour - time.Minute) // ready for longer than FailbackDelay
	flagged := func(m *Member) { m.SplitBrain = 3 }
	v := view("b", mem("a", 1, record(4, "b", true), readySince(ready), flagged), mem("b", 2, role(RoleMaster), record(4, "b", true)))
	a := Decide(v)
	if a.Kind != None || !strings.Contains(a.Reason, "failback to a stopped") || !strings.Contains(a.Reason, "term 3") {
		t.Fatalf("failback to a site in split brain: %+v, want no action saying it stopped", a)
	}
	v.Members[0].SplitBrain = 0
	if a := Decide(v); a.Kind != Release || a.To != "a" {
		t.Fatalf("failback once cleared: %+v, want release to a", a)
	}
	v.Members[0].SplitBrain = 3
	v.Switchover = "a"
	if a := Decide(v); a.Kind != Release || a.To != "a" {
		t.Fatalf("switchover to a site in split brain: %+v, want release to a", a)
	}
}

// TestSplitBrainMarkSurvivesRestart: the mark is kept in the data directory, published again
// by a new Node, and once cleared stays cleared.
func TestSplitBrainMarkSurvivesRestart(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t), freeAddr(t))
	n, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if st := n.State(); st.SplitBrain != 0 {
		t.Fatalf("new node: split brain %d", st.SplitBrain)
	}
	if _, err := n.ClearSplitBrain(); err == nil {
		t.Fatal("ClearSplitBrain without a split brain: no error")
	}
	n.noteSplitBrain(7)
	if got := n.stateLocked().SplitBrain; got != 7 {
		t.Fatalf("after noteSplitBrain(7): %d", got)
	}

	n2, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if st := n2.State(); st.SplitBrain != 7 {
		t.Fatalf("restarted node: split brain %d, want 7", st.SplitBrain)
	}
	if term, err := n2.ClearSplitBrain(); err != nil || term != 7 {
		t.Fatalf("ClearSplitBrain: %d, %v", term, err)
	}
	n2.noteSplitBrain(7) // the same term again: not reported again
	if got := n2.stateLocked().SplitBrain; got != 0 {
		t.Fatalf("a cleared term came back: %d", got)
	}
	n3, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if st := n3.State(); st.SplitBrain != 0 {
		t.Fatalf("restarted after clearing: split brain %d, want 0", st.SplitBrain)
	}
	n3.noteSplitBrain(9) // a later one is
	if got := n3.stateLocked().SplitBrain; got != 9 {
		t.Fatalf("a new split brain after a cleared one: %d, want 9", got)
	}
}

// TestCommittedAlone: a record of this site saying peer_synced = false counts as committed
// alone unless this process recorded it and its shim never went solo in that term.
func TestCommittedAlone(t *testing.T) {
	t.Parallel()
	var solo atomic.Bool
	cfg := siteConfig(t, "site1", 1, freeAddr(t), freeAddr(t))
	n, err := New(cfg, Options{Logger: testLogger(t), WentSolo: func(term uint64) bool { return term == 7 && solo.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	if !n.committedAlone(7) {
		t.Error("a record from an earlier process (nothing announced here): want committed alone")
	}
	n.mu.Lock()
	n.announced = 7
	n.mu.Unlock()
	if n.committedAlone(7) {
		t.Error("announced here, never went solo: want not committed alone")
	}
	if !n.committedAlone(6) {
		t.Error("another term than the one announced here: want committed alone")
	}
	solo.Store(true)
	if !n.committedAlone(7) {
		t.Error("announced here and went solo: want committed alone")
	}
	n2, err := New(cfg, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n2.mu.Lock()
	n2.announced = 7
	n2.mu.Unlock()
	if !n2.committedAlone(7) {
		t.Error("without WentSolo: want committed alone")
	}
}

// TestSplitBrainDelivered: a split brain found in a round that changes neither role nor term —
// here the late verdict of checkSplitBrain, once the shim says it did go solo after the
// step-down — still reaches the readers of Changes: the shim gives up shipping what it
// committed alone only when a delivered State says so (cmd/tandem database.setRole).
func TestSplitBrainDelivered(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	var cutA, cutB cutSet
	var solo atomic.Bool
	a := run(t, siteConfig(t, "site1", 1, addrA, addrB), Options{Cut: cutA.cut, WentSolo: func(uint64) bool { return solo.Load() }})
	b := run(t, siteConfig(t, "site2", 2, addrB, addrA), Options{Cut: cutB.cut})
	waitFor(t, 5*time.Second, "site1 master, site2 backup", master(a, b))
	term := a.State().Term
	// site1 announces going solo (its shim has not switched yet) and the sites lose each other.
	if err := a.SetPeerSynced(false); err != nil {
		t.Fatal(err)
	}
	cutA.set(addrB)
	cutB.set(addrA)
	waitFor(t, 5*time.Second, "site2 master of a newer term", func() bool { s := b.State(); return s.Role == RoleMaster && s.Term > term })
	if err := b.SetPeerSynced(false); err != nil {
		t.Fatal(err)
	}
	cutA.set()
	cutB.set()
	waitFor(t, 10*time.Second, "site1 backup of site2", func() bool { s := a.State(); return s.Role == RoleBackup && s.Master == "site2" })
	if sb := a.State().SplitBrain; sb != 0 {
		t.Fatalf("split brain %d before site1's shim went solo", sb)
	}
	for len(a.Changes()) > 0 {
		<-a.Changes()
	}
	// The solo switch lands after the step-down: site1 did commit alone in its term.
	solo.Store(true)
	waitFor(t, 2*time.Second, "site1 notes the split brain", func() bool { return a.State().SplitBrain == term })
	select {
	case s := <-a.Changes():
		if s.SplitBrain != term {
			t.Fatalf("delivered State says split brain %d, want %d", s.SplitBrain, term)
		}
	case <-time.After(time.Second):
		t.Fatalf("the split brain of term %d was never delivered on Changes", term)
	}
}

// TestSplitBrainMarkSavedInOrder: a split brain noted while an operator clears an earlier one
// — each saves the mark outside the node's lock — must leave in the data directory the mark
// the node holds: a file saying "cleared" for an earlier term while the node holds a newer
// mark forgets that term at the next start, and failback to this site (which committed alone)
// would be allowed again.
func TestSplitBrainMarkSavedInOrder(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t), freeAddr(t))
	n, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for term := uint64(1); term <= 300; term += 2 {
		n.noteSplitBrain(term)
		var wg sync.WaitGroup
		wg.Go(func() { _, _ = n.ClearSplitBrain() })
		wg.Go(func() { n.noteSplitBrain(term + 1) })
		wg.Wait()
		kept, err := loadSplitBrain(cfg.DataDir)
		if err != nil {
			t.Fatal(err)
		}
		n.mu.Lock()
		held := n.splitMark
		n.mu.Unlock()
		if kept != held {
			t.Fatalf("round %d: the node holds %+v, its data directory keeps %+v", term, held, kept)
		}
	}
}

// TestSplitBrainStopsFailbackAfterFence: failback to a site in split brain stops (DESIGN §3)
// also once the master lost the role for a moment without releasing it (fenced by a short
// cut, backup again): the holder takes control back, in both sites' views. Before, the better
// site, ready for longer than failback_delay, found itself the best and took control at once,
// its split brain notwithstanding, and the holder agreed.
func TestSplitBrainStopsFailbackAfterFence(t *testing.T) {
	t.Parallel()
	ready := t0.Add(time.Hour - time.Minute) // ready for longer than FailbackDelay
	flagged := func(m *Member) { m.SplitBrain = 3 }
	a := mem("a", 1, record(4, "b", true), readySince(ready), flagged)
	b := mem("b", 2, record(4, "b", true), readySince(ready)) // master of term 4, fenced a moment ago
	w := wit("w", record(4, "b", true))
	if got := Decide(view("a", a, b, w)); got.Kind == Claim || got.Kind == Promote {
		t.Errorf("site a in split brain, holder b back as backup: a %+v, want a to wait", got)
	}
	if got := Decide(view("b", a, b, w)); got.Kind != Claim && got.Kind != Promote {
		t.Errorf("site a in split brain, holder b back as backup: b %+v, want b to take control back", got)
	}
}
