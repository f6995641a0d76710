package gossip

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestNodeRefusalRecordSuperseded: a record adopted from a refusal (PromoteRefusal: the other
// site's database says site1 went on alone in term 6, a term the gossip never carried) is kept
// (saved) and published, and a later word of site1 for that term (peer_synced, a newer Seq)
// replaces it once site1 is back: the site does not stay "not current" for good.
func TestNodeRefusalRecordSuperseded(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: true, Seq: 1}}
	var checks atomic.Int64
	var caughtUp atomic.Bool // site1's database says peer_synced
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			checks.Add(1)
			if caughtUp.Load() {
				return nil
			}
			return &PromoteRefusal{Record: TermRecord{Term: 6, Master: "site1"}, Err: errors.New("site1 went on alone in term 6")}
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	n.Force()
	ctx := t.Context()
	for range 5 {
		n.decide(ctx, ml)
	}
	st := n.State()
	if st.Record != (TermRecord{Term: 6, Master: "site1"}) || store.rec != st.Record || st.Role == RoleMaster {
		t.Fatalf("after the refusal: %s, record %+v, stored %+v", st.Role, st.Record, store.rec)
	}
	if checks.Load() != 1 {
		t.Fatalf("%d checks in 5 rounds after the adoption, want 1 (not current: no promotion)", checks.Load())
	}
	t.Logf("waits: %s", st.Decision)
	// site1 is back, master of term 6, and has caught site2's database up.
	n.mu.Lock()
	n.peers["site1"] = &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: true, DBReachable: true, Role: RoleMaster,
		Record: TermRecord{Term: 6, Master: "site1", PeerSynced: true, Seq: 7}}, hasMeta: true, mlAlive: true, alive: true, since: time.Now()}
	n.mu.Unlock()
	caughtUp.Store(true)
	n.decide(ctx, ml)
	st = n.State()
	t.Logf("site1 back: %s, record %+v, decision %q", st.Role, st.Record, st.Decision)
	if !st.Record.PeerSynced || store.rec != st.Record {
		t.Fatalf("site1's synced word for term 6 not adopted: record %+v, stored %+v", st.Record, store.rec)
	}
	// site1 goes away for good: site2 takes over from the synced record.
	n.mu.Lock()
	p := n.peers["site1"]
	p.alive, p.since = false, time.Now().Add(-time.Hour)
	n.mu.Unlock()
	for range 3 {
		n.decide(ctx, ml)
	}
	if st = n.State(); st.Role != RoleMaster || st.Term != 7 {
		t.Fatalf("site1 lost after its synced word: site2 %s of term %d (%s), want master of 7", st.Role, st.Term, st.Decision)
	}
}

// TestNodeAcceptLossNoRetryLoop: tandem promote -accept-loss lifts the hold of a refused
// promotion; a promotion that then fails (BeforePromote) holds the site again, doubled: it is
// not tried again every round (each try publishes a new term).
func TestNodeAcceptLossNoRetryLoop(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: true}}
	var n *Node
	var checks, tries atomic.Int64
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			checks.Add(1)
			if n.AcceptedLoss() == 5 {
				return nil
			}
			return errors.New("site1, master of term 5, went on alone")
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
			tries.Add(1)
			return false, errors.New("sequences cannot be moved")
		}})
	n.meta.ServerHealthy = true
	n.Force()
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
	}
	if err := n.AcceptLoss(5); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		n.decide(ctx, ml)
	}
	n.mu.Lock()
	hold, fails := time.Until(n.holdUntil), n.promoteFails
	n.mu.Unlock()
	st := n.State()
	t.Logf("checks %d, BeforePromote tries %d, term %d, hold %v, fails %d, decision %q", checks.Load(), tries.Load(), st.Term, hold.Round(time.Second), fails, st.Decision)
	if tries.Load() != 1 || st.Term != 6 || hold < 15*time.Second {
		t.Fatalf("after -accept-loss: %d failed promotions, term %d, hold %v: want 1, term 6, held 20 s", tries.Load(), st.Term, hold)
	}
}

// TestNodeRefusalNoSplitBrainAnnouncedOnly: the refusal's record, newer than this site's own
// unsynced term, is a split brain only when this site committed alone in it (as in decide): a
// term announced solo by this process whose shim never committed alone is not one.
func TestNodeRefusalNoSplitBrainAnnouncedOnly(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t))
	store := &memStore{rec: TermRecord{Term: 5, Master: "site1", PeerSynced: false}}
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		WentSolo: func(uint64) bool { return false },
		CheckPromote: func(ctx context.Context, term uint64) error {
			return &PromoteRefusal{Record: TermRecord{Term: 6, Master: "site2"}, Err: errors.New("site2 went on alone in term 6")}
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) { return true, nil }})
	n.meta.ServerHealthy = true
	n.announced = 5
	n.Force()
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
	}
	st := n.State()
	t.Logf("record %+v, split brain %d", st.Record, st.SplitBrain)
	if st.Record.Term != 6 || st.SplitBrain != 0 {
		t.Fatalf("record %+v, split brain %d: want term 6 adopted, no split brain", st.Record, st.SplitBrain)
	}
}
