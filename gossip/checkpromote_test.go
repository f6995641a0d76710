package gossip

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestNodeAcceptLossLiftsRefusalHold: a site whose promotions CheckPromote refused (cmd/tandem's
// mayPromote: the other site's database says its master went on alone) stands aside, and the
// hold grows with every refusal up to 5 min. The operator's tandem promote -accept-loss, the
// word that error asks for, is what lets it through: it must take control at once (README:
// after fence_delay), not after what is left of a hold that only kept it from asking again.
func TestNodeAcceptLossLiftsRefusalHold(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t)) // alone: site1 is gone
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: true}}
	var n *Node
	var checks, promoted atomic.Int64
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			checks.Add(1)
			if n.AcceptedLoss() == 5 {
				return nil
			}
			return errors.New("the peer database's term record says site1, master of term 5, went on alone")
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
			promoted.Store(int64(term))
			return true, nil
		}})
	n.meta.ServerHealthy = true
	n.Force() // tandem promote -force: lifts the cold-start wait only
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
	}
	if checks.Load() != 1 || promoted.Load() != 0 {
		t.Fatalf("before accept-loss: %d checks, promoted to term %d; want 1 refused check", checks.Load(), promoted.Load())
	}
	if err := n.AcceptLoss(5); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		n.decide(ctx, ml)
	}
	st := n.State()
	t.Logf("after accept-loss: %d checks, node %s of term %d, decision %q", checks.Load(), st.Role, st.Term, st.Decision)
	if st.Role != RoleMaster {
		t.Fatalf("tandem promote -accept-loss 5 accepted, but site2 still stands aside (%s, decision %q): it waits out what is left of its refusal hold (10 s, up to 5 min after more refusals)", st.Role, st.Decision)
	}
}

// TestNodeRefusalRecordKeepsSplitBrain: a refusal that names a newer term of the other site
// (PromoteRefusal) is adopted as the gossip's word would be, and so, as for that word, a site
// that committed alone in its own last term first notes the split brain: adopted over, its
// record would no longer show it, and once the gossip healed nothing would.
func TestNodeRefusalRecordKeepsSplitBrain(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: false}} // alone in 5
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			return &PromoteRefusal{Record: TermRecord{Term: 6, Master: "site2"}, Err: errors.New("site2 went on alone in term 6")}
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	n.Force()
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
	}
	st := n.State()
	t.Logf("record %+v, split brain %d", st.Record, st.SplitBrain)
	if st.Record.Term != 6 {
		t.Fatalf("record %+v: the refusal's newer record was not adopted", st.Record)
	}
	if st.SplitBrain != 5 {
		t.Fatalf("site1 committed alone in term 5 and adopted site2's term 6, which went on alone too, but notes no split brain (%d)", st.SplitBrain)
	}
}

// TestNodeRefusalDecisionSaysWhy: a site that stands aside after CheckPromote refused it (the
// other site's database says its master went on alone) told the operator, in its status's
// decision and in what tandem promote -force answers, "database unreachable": its database
// answers, and the reason it waits, with the -accept-loss that lets it through, was in its
// log alone.
func TestNodeRefusalDecisionSaysWhy(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: true}}
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			return errors.New("site1, master of term 5, went on alone (tandem promote -accept-loss 5)")
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	n.Force()
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
	}
	st := n.State()
	t.Logf("%s, decision %q", st.Role, st.Decision)
	if st.Role == RoleMaster || !strings.Contains(st.Decision, "-accept-loss 5") {
		t.Fatalf("decision %q: does not say why site2 stands aside", st.Decision)
	}
}

// TestNodeAcceptLossSameTermRefusal: both sites took term 6 alone, cut off from each other
// (DESIGN §3 split brain, without a witness), so each database holds its own site's record of
// term 6, peer_synced = false. Back, each site is the master of the newest term it knows of,
// and CheckPromote (mayPromote) refuses each the next term for the other's record: "tandem
// promote -accept-loss 6". But the node refused that word on both — "master of term 6 itself:
// nothing of it to lose" — and with both sidecars up no site could ever take control while
// the other's database answered. Refused for another master's record of its own term, the
// site takes the operator's -accept-loss of it.
func TestNodeAcceptLossSameTermRefusal(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 6, Master: "site2", PeerSynced: false, Seq: 1}}
	var n *Node
	var checks atomic.Int64
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			checks.Add(1)
			if n.AcceptedLoss() == 6 {
				return nil
			}
			return &PromoteRefusal{Record: TermRecord{Term: 6, Master: "site1"},
				Err: errors.New("the peer database's term record says site1, master of term 6, went on alone (tandem promote -accept-loss 6)")}
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	// site1 is up too, refused by site2's database likewise: it stands aside.
	n.mu.Lock()
	n.peers["site1"] = &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: true, DBReachable: false, Role: RoleBackup,
		Record: TermRecord{Term: 6, Master: "site1", PeerSynced: false, Seq: 1}}, hasMeta: true, mlAlive: true, alive: true, since: time.Now()}
	n.mu.Unlock()
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
	}
	if checks.Load() != 1 || n.State().Role == RoleMaster {
		t.Fatalf("before accept-loss: %d checks, %s; want 1 refused check", checks.Load(), n.State().Role)
	}
	if err := n.AcceptLoss(6); err != nil {
		t.Fatalf("tandem promote -accept-loss 6, as the refusal says: %v; no site can take control while the other's database answers", err)
	}
	for range 3 {
		n.decide(ctx, ml)
	}
	if st := n.State(); st.Role != RoleMaster || st.Term != 7 {
		t.Fatalf("after -accept-loss 6: %s of term %d (%s), want master of term 7", st.Role, st.Term, st.Decision)
	}
}

// TestNodeRefusalHoldEndsWithNewerTerm: a site refused again and again (CheckPromote: the other
// site's database says its master went on alone in term 5) stands aside for a hold that grows
// up to 5 min. The other site then comes back, takes term 6 and catches this site's database up
// — the refusal no longer holds — and is lost again. This site must take control after
// fence_delay, not after what is left of a hold for a refusal of a term long gone.
func TestNodeRefusalHoldEndsWithNewerTerm(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: true, Seq: 1}}
	var caughtUp atomic.Bool // site1's database says peer_synced
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			if caughtUp.Load() {
				return nil
			}
			return &PromoteRefusal{Record: TermRecord{Term: 5, Master: "site1"},
				Err: errors.New("the peer database's term record says site1, master of term 5, went on alone (tandem promote -accept-loss 5)")}
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	n.Force()
	ctx := t.Context()
	for range 5 { // refused 5 times: each hold waited out
		n.decide(ctx, ml)
		n.mu.Lock()
		n.holdUntil = time.Now().Add(-time.Millisecond)
		n.mu.Unlock()
	}
	n.decide(ctx, ml) // refused once more: held for minutes
	n.mu.Lock()
	hold := time.Until(n.holdUntil)
	n.mu.Unlock()
	if hold < time.Minute {
		t.Fatalf("held %v after 6 refusals, want minutes", hold)
	}
	// site1 is back, master of term 6, and has caught site2's database up.
	site1 := &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: true, DBReachable: true, Role: RoleMaster,
		Record: TermRecord{Term: 6, Master: "site1", PeerSynced: true, Seq: 2}}, hasMeta: true, mlAlive: true, alive: true, since: time.Now()}
	n.mu.Lock()
	n.peers["site1"] = site1
	n.mu.Unlock()
	caughtUp.Store(true)
	n.decide(ctx, ml)
	// site1 is lost, for longer than fence_delay.
	n.mu.Lock()
	site1.alive, site1.since = false, time.Now().Add(-time.Hour)
	n.mu.Unlock()
	for range 3 {
		n.decide(ctx, ml)
	}
	if st := n.State(); st.Role != RoleMaster || st.Term != 7 {
		t.Fatalf("site1, back with term 6 and lost again: site2 %s of term %d (%s), want master of term 7: it waits out a hold of %v for a refusal of term 5",
			st.Role, st.Term, st.Decision, hold.Round(time.Second))
	}
}
