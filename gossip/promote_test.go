package gossip

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memStore is a RecordStore in memory whose Save fails when fail says so (the n-th Save,
// counting from 1, of r). A fake is enough: what is tested is the Node's logic around Save.
type memStore struct {
	mu    sync.Mutex
	rec   TermRecord
	saves int
	fail  func(n int, r TermRecord) error
}

func (s *memStore) Load() (TermRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec, nil
}

func (s *memStore) Save(r TermRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saves++
	if s.fail != nil {
		if err := s.fail(s.saves, r); err != nil {
			return err
		}
	}
	s.rec = r
	return nil
}

// TestNodePromotionSoloSaveFails: a promotion whose shim went solo (BeforePromote said the
// peer is not in step) and whose record of peer_synced = false then could not be saved (the
// local database went away) left the shim committing alone in the new term while the node
// stayed backup, was never told, and claimed the same term again and again. Now the failed
// promotion is delivered as what it is: the term, with this site not master (cmd turns the
// shim read-only), published as peer_synced = false (the shim may have committed alone, so
// the other site must not take over without it), and the site stands aside for a while.
func TestNodePromotionSoloSaveFails(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t)) // alone: it promotes itself
	dbGone := errors.New("local database gone")
	store := &memStore{fail: func(n int, r TermRecord) error {
		if n > 1 {
			return dbGone // the first Save of the term worked, then the database went away
		}
		return nil
	}}
	var mu sync.Mutex
	shim := "read-only" // what cmd/tandem's shim would be in
	var promoted uint64
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			shim, promoted = "solo", term // the peer is away: the shim commits alone
			return false, nil
		}})
	n.meta.ServerHealthy = true
	ctx := t.Context()
	for range 3 {
		n.decide(ctx, ml)
		// cmd/tandem's setRole: a State whose role is not master puts the shim read-only.
		select {
		case st := <-n.Changes():
			mu.Lock()
			if st.Role != RoleMaster && promoted != 0 && st.Term >= promoted {
				shim = "read-only"
			}
			mu.Unlock()
		default:
		}
	}
	st := n.State()
	n.mu.Lock()
	published := n.meta.Record
	n.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("node %s of term %d (published %+v), shim %s (promoted to term %d)", st.Role, st.Term, published, shim, promoted)
	if promoted == 0 {
		t.Fatal("site1 never tried to promote")
	}
	if (st.Role == RoleMaster) != (shim == "solo") {
		t.Fatalf("node is %s but its shim is %s in term %d", st.Role, shim, promoted)
	}
	if st.Role != RoleMaster && (published.Term < promoted || (published.Term == promoted && published.PeerSynced)) {
		t.Fatalf("the shim went solo in term %d, but site1 publishes %+v: the other site may take over without what it committed alone", promoted, published)
	}
}

// slowStore is a FileStore whose Saves, once slow is set, wait for release (bounded): a local
// database that hangs under recordStore.Save (cmd/tandem) for its timeout.
type slowStore struct {
	*FileStore
	slow    atomic.Bool
	entered chan struct{} // a slow Save started
	release chan struct{}
}

func (s *slowStore) Save(r TermRecord) error {
	if s.slow.Load() {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		select {
		case <-s.release:
		case <-time.After(5 * time.Second):
		}
	}
	return s.FileStore.Save(r)
}

// TestNodeSlowSaveHoldsNothing: a master recording peer_synced (SetPeerSynced) while its
// local database hangs held the node's lock for the whole Save: gossip callbacks (metadata,
// member events), State, the health report and the decision loop all waited, so a master whose
// server failed meanwhile released the role only once the database answered or timed out.
// Now the Save runs outside the lock, and the record it saved is published after it, its Seq
// still after every earlier word.
func TestNodeSlowSaveHoldsNothing(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t)) // alone: it promotes itself
	store := &slowStore{FileStore: NewFileStore(cfg.DataDir), entered: make(chan struct{}, 1), release: make(chan struct{})}
	n := run(t, cfg, Options{Store: store})
	waitFor(t, 10*time.Second, "site1 master", func() bool { return n.State().Role == RoleMaster })
	before := n.State().Record

	store.slow.Store(true)
	saved := make(chan error, 1)
	go func() { saved <- n.SetPeerSynced(false) }()
	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("SetPeerSynced did not save")
	}
	within := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			t.Errorf("%s waited for the term record's Save", what)
		}
	}
	within("memberlist's NodeMeta", func() { delegate{n.Node}.NodeMeta(512) })
	within("State", func() { n.State() })
	within("SetServerHealthy", func() { n.SetServerHealthy(false) })
	// The server failed: the master hands over at once, the hanging database notwithstanding.
	within("the release of an unhealthy server's master", func() {
		for n.State().Role == RoleMaster {
			time.Sleep(10 * time.Millisecond)
		}
	})
	close(store.release)
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	after := n.meta.Record // published
	n.mu.Unlock()
	stored, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("record before %+v, after %+v, stored %+v", before, after, stored)
	if after.Term != before.Term || after.PeerSynced || after.Seq <= before.Seq || stored != after {
		t.Fatalf("after SetPeerSynced(false): published %+v, stored %+v; want term %d unsynced, Seq after %d", after, stored, before.Term, before.Seq)
	}
}

// TestNodePromotionAfterSoloTerm: a site whose own last term left the peer lacking commits
// (its record says peer_synced = false) saved its next term as synced before BeforePromote
// had even looked at the peer: killed in between (the resolver and the catch-up may take
// many seconds there), it came back with a record saying the peer has everything, and the
// other site, adopting that, could take over without what this site had committed alone
// (DESIGN §3 rule 2). The new term now starts unsynced and turns synced only on
// BeforePromote's word.
func TestNodePromotionAfterSoloTerm(t *testing.T) {
	t.Parallel()
	for _, caughtUp := range []bool{false, true} {
		cfg := siteConfig(t, "site1", 1, freeAddr(t)) // alone: it promotes itself
		store := NewFileStore(cfg.DataDir)
		if err := store.Save(TermRecord{Term: 4, Master: "site1", PeerSynced: false, Seq: 7}); err != nil {
			t.Fatal(err)
		}
		var during TermRecord
		n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
			var err error
			if during, err = store.Load(); err != nil { // what a crash now would leave
				t.Error(err)
			}
			return caughtUp, nil
		}})
		n.meta.ServerHealthy = true
		n.decide(t.Context(), ml)
		st := n.State()
		stored, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("caught up %v: stored during the promotion %+v, after %+v; %s of term %d", caughtUp, during, stored, st.Role, st.Term)
		if during.Term != 5 || during.PeerSynced {
			t.Errorf("caught up %v: while BeforePromote ran the store held %+v: after a crash the peer would count as holding everything", caughtUp, during)
		}
		if st.Role != RoleMaster || stored.Term != 5 || stored.PeerSynced != caughtUp || st.Record != stored {
			t.Errorf("caught up %v: after the promotion %s, published %+v, stored %+v; want master of term 5, peer_synced %v",
				caughtUp, st.Role, st.Record, stored, caughtUp)
		}
	}
}

// TestNodeFailedPromotionAfterSoloTerm: the promotion of a site whose last term left the peer
// lacking commits fails (BeforePromote: the shim could not get ready); the term it saved is
// published, so that the other site takes a newer one, but published unsynced: as synced, the
// other site adopted it and took over without what this site had committed alone.
func TestNodeFailedPromotionAfterSoloTerm(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site1", 1, freeAddr(t)) // alone: it promotes itself
	store := NewFileStore(cfg.DataDir)
	if err := store.Save(TermRecord{Term: 4, Master: "site1", PeerSynced: false, Seq: 7}); err != nil {
		t.Fatal(err)
	}
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
		return false, errors.New("cannot move sequence s past the values in use")
	}})
	n.meta.ServerHealthy = true
	n.decide(t.Context(), ml)
	n.mu.Lock()
	published := n.meta.Record
	n.mu.Unlock()
	if published.Term != 5 || published.PeerSynced {
		t.Fatalf("after the failed promotion site1 publishes %+v; want term 5 unsynced", published)
	}
	// What the other site does with it: it does not adopt it, and is not current.
	other := Member{Meta: Meta{Site: "site2", Priority: 2, ServerHealthy: true, DBReachable: true, Role: RoleBackup,
		Record: TermRecord{Term: 4, Master: "site1", PeerSynced: false, Seq: 7}}, Alive: true}
	self := Member{Meta: Meta{Site: "site1", Priority: 1, Role: RoleBackup, Record: published}, Alive: true}
	if rec, ok := Adopt(other, []Member{self}); ok {
		t.Fatalf("site2 adopts %+v from the failed promotion", rec)
	}
}

// TestNodeUnsavableTermStandsAside: the better site whose own term record cannot be saved (its
// data_dir unwritable, a lock on tandem.state) claimed the role every round, failed, and
// claimed again, while the other site, which could serve, waited behind it for good: no
// master at all. It now stands aside after each try, as a promotion that fails later does,
// and publishes the term it tried (its database may hold it already), so that the other
// site takes a newer one.
func TestNodeUnsavableTermStandsAside(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	var tries atomic.Int64
	var tried atomic.Uint64
	store := &memStore{fail: func(_ int, r TermRecord) error {
		if r.Master != "site1" {
			return nil // another site's record, adopted
		}
		tries.Add(1)
		tried.Store(r.Term)
		return errors.New("save term record: open state.json.tmp: read-only file system")
	}}
	run(t, cfgA, Options{Store: store})
	b := run(t, cfgB, Options{})
	waitFor(t, 8*time.Second, "site2 master while site1 cannot save its term record", func() bool { return b.State().Role == RoleMaster })
	if got := b.State().Term; got <= tried.Load() {
		t.Fatalf("site2 took term %d; site1 tried term %d, which its database may hold", got, tried.Load())
	}
	if n := tries.Load(); n > 2 {
		t.Fatalf("site1 tried to save its term %d times before site2 took over, want 1 or 2", n)
	}
}

// TestNodeUnsavedTermAfterRestart: the term a site published although its Save failed (see
// TestNodeUnsavableTermStandsAside) is held by the other site too, which adopted it; restarted
// with its store working again, this site holds the older term and would wait for good, not
// current, while the other site cannot serve either. It takes its own word back from the copy.
func TestNodeUnsavedTermAfterRestart(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	var broken atomic.Bool
	broken.Store(true)
	store := &memStore{fail: func(_ int, r TermRecord) error {
		if broken.Load() && r.Master == "site1" {
			return errors.New("save term record: connection refused")
		}
		return nil
	}}
	a := run(t, cfgA, Options{Store: store})
	b := run(t, cfgB, Options{})
	b.SetServerHealthy(false) // site2 cannot serve
	waitFor(t, 8*time.Second, "site2 holds the term site1 tried", func() bool {
		st := b.State()
		return st.Record.Master == "site1" && st.Term > 0
	})
	tried := b.State().Term
	a.kill()
	broken.Store(false) // the store works again after the restart
	if rec, _ := store.Load(); rec.Term >= tried {
		t.Fatalf("site1's store holds %+v, want older than the term %d it tried", rec, tried)
	}
	a = run(t, cfgA, Options{Store: store})
	waitFor(t, 15*time.Second, "site1 master after its restart", func() bool { return a.State().Role == RoleMaster })
	if got := a.State().Term; got <= tried {
		t.Fatalf("site1 master of term %d, not newer than the term %d it published", got, tried)
	}
}
