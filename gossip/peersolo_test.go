package gossip

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestPeerSoloLost: the check before a promotion, of the term record the other site's database
// holds. b took term 6 over its term-4 record across a cut gossip link, a's database down; a,
// never hearing of term 6, took term 5 with b's database down, and both went on alone (the gossip
// model's seed 50422 of "databases, two sites with gossip cuts"): b's next promotion, a's
// database answering {5, a, peer_synced = false}, lost a's term-5 commits, term 5 being older
// than b's own. An older term b took its own over (caught up, its loss accepted, its master's
// database down then) lets it through, as before.
func TestPeerSoloLost(t *testing.T) {
	rec := func(term uint64, master string, synced bool) TermRecord {
		return TermRecord{Term: term, Master: master, PeerSynced: synced}
	}
	for _, c := range []struct {
		name string
		own  TermRecord
		over uint64
		peer TermRecord
		want bool
	}{
		{"older solo term taken after own (seed 50422)", rec(6, "b", false), 4, rec(5, "a", false), true},
		{"older solo term, what own was taken over not known", rec(6, "b", true), 0, rec(5, "a", false), true},
		{"older solo term own was taken over (accept-loss, or its database down then)", rec(6, "b", false), 5, rec(5, "a", false), false},
		{"older solo term well before own", rec(9, "b", false), 7, rec(5, "a", false), false},
		{"older term caught up", rec(6, "b", false), 4, rec(5, "a", true), false},
		{"own older term in the peer database", rec(6, "b", false), 4, rec(5, "b", false), false},
		{"no record in the peer database", rec(6, "b", false), 4, TermRecord{}, false},
		{"same term, another master", rec(6, "b", false), 5, rec(6, "a", false), true},
		{"newer solo term", rec(6, "a", true), 0, rec(7, "a", false), true},
		{"newer term caught up", rec(6, "a", true), 0, rec(7, "a", true), false},
		{"older term of the master of own, adopted", rec(6, "a", true), 0, rec(5, "a", false), false},
	} {
		if got := PeerSoloLost("b", c.own, c.over, c.peer); got != c.want {
			t.Errorf("%s: PeerSoloLost(b, own %+v, over %d, peer %+v) = %v, want %v", c.name, c.own, c.over, c.peer, got, c.want)
		}
	}
}

// TestTookOverKept: the term a promotion took, and the term of the record the site held then,
// are kept in the data directory before the term is: a restart, which forgets an operator's
// accept-loss, still knows what the term was taken over (PeerSoloLost).
func TestTookOverKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := NewFileStore(dir)
	if err := store.Save(TermRecord{Term: 4, Master: "a", PeerSynced: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	n := siteB(t, dir, store)
	n.promote(context.Background(), Action{Kind: Promote, Term: 6})
	if r, err := store.Load(); err != nil || r.Term != 6 || r.Master != "b" {
		t.Fatalf("after promote(6) the store holds %+v (%v), want term 6 of b", r, err)
	}
	if got := n.TookOver(6); got != 4 {
		t.Fatalf("TookOver(6) = %d, want 4 (the record held when term 6 was taken)", got)
	}
	if got := n.TookOver(5); got != 0 {
		t.Fatalf("TookOver(5) = %d, want 0 (not taken here)", got)
	}
	restartedTookOver(t, dir, store, 6, 4)
}

// TestTakenOverMarkPrev: a promotion that fails before its term is saved (the store refuses it,
// or the process dies between the two saves) leaves this site's record in the term it took
// before; what that one was taken over is still known.
func TestTakenOverMarkPrev(t *testing.T) {
	m := takenOverMark{}.next(6, 5, true).next(7, 6, true)
	for _, c := range []struct{ term, want uint64 }{{7, 6}, {6, 5}, {5, 0}, {0, 0}} {
		if got := m.over(c.term); got != c.want {
			t.Errorf("after terms 6 (over 5) and 7 (over 6): over(%d) = %d, want %d", c.term, got, c.want)
		}
	}
	if again := m.next(7, 6, true); again.over(6) != 5 {
		t.Errorf("term 7 taken again (a retried save): over(6) = %d, want 5", again.over(6))
	}
	if later := m.next(8, 7, true); later.over(6) != 0 || later.over(7) != 6 || later.over(8) != 7 {
		t.Errorf("after term 8 (over 7): over 6, 7, 8 = %d, %d, %d; want 0, 6, 7", later.over(6), later.over(7), later.over(8))
	}
}

// TestTookOverKeptAfterFailedPromotions: two promotions in a row that fail to save their term
// (the store refuses it: the local database away, or a crash between the two saves, twice)
// leave this site's record in the term it held before both; what that term was taken over must
// still be known, or the next promotion is refused for an older term of the other site's that
// this site's term did take over (PeerSoloLost).
func TestTookOverKeptAfterFailedPromotions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbGone := errors.New("local database gone")
	store := &memStore{rec: TermRecord{Term: 4, Master: "a", PeerSynced: true, Seq: 1}}
	n := siteB(t, dir, store)
	n.promote(context.Background(), Action{Kind: Promote, Term: 6}) // term 6 over term 4
	store.mu.Lock()
	store.fail = func(int, TermRecord) error { return dbGone }
	store.mu.Unlock()
	n.promote(context.Background(), Action{Kind: Promote, Term: 7}) // fails: the record stays 6
	n.promote(context.Background(), Action{Kind: Promote, Term: 8}) // fails again
	if r, _ := store.Load(); r.Term != 6 {
		t.Fatalf("the store holds %+v, want term 6 (both later saves failed)", r)
	}
	if got := n.TookOver(6); got != 4 {
		t.Errorf("after two failed promotions, TookOver(6) = %d, want 4 (the record still held is term 6)", got)
	}
	restartedTookOver(t, dir, store, 6, 4)
}

// TestTookOverRepromotion: a promotion over this site's own term record (its master released
// or lost the role, and no one took a newer term) takes the new term over what that record was
// taken over, not over the record's term: b took term 6 over its term-4 record, not knowing of
// the term 5 a took later, cut off, with b's database down; b's next term, 7, taken with a's
// database down again, knew no more of term 5 than term 6 did. Kept as taken over term 6, term
// 7 let b's promotion after it through a's database's {5, a, peer_synced = false} (PeerSoloLost),
// losing a's term-5 commits as seed 50422 did.
func TestTookOverRepromotion(t *testing.T) {
	t.Parallel()
	store := &memStore{rec: TermRecord{Term: 4, Master: "a", PeerSynced: true, Seq: 1}}
	n := siteB(t, t.TempDir(), store)
	n.promote(context.Background(), Action{Kind: Promote, Term: 6})
	n.promote(context.Background(), Action{Kind: Promote, Term: 7})
	if r, _ := store.Load(); r.Term != 7 || r.Master != "b" {
		t.Fatalf("the store holds %+v, want term 7 of b", r)
	}
	over := n.TookOver(7)
	if over != 4 {
		t.Errorf("TookOver(7) = %d, want 4 (term 7 was taken over term 6, itself taken over term 4)", over)
	}
	if !PeerSoloLost("b", TermRecord{Term: 7, Master: "b", PeerSynced: true}, over, TermRecord{Term: 5, Master: "a"}) {
		t.Errorf("b, master of term 7 taken over %d, lets a's {5, a, unsynced} through", over)
	}
}

// siteB is a new node of site b (priority 1, not run) over data_dir dir and store, given a
// free loopback gossip address of its own: a second call over the same dir and store is a restart.
func siteB(t *testing.T, dir string, store RecordStore) *Node {
	t.Helper()
	cfg := &config.Config{Kind: config.KindSite, Site: "b", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: freeAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		Admin:  config.Admin{Listen: "127.0.0.1:0"}}
	n, err := New(cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// restartedTookOver checks that site b, started again over dir and store, knows term was taken
// over want.
func restartedTookOver(t *testing.T, dir string, store RecordStore, term, want uint64) {
	t.Helper()
	if got := siteB(t, dir, store).TookOver(term); got != want {
		t.Errorf("after a restart, TookOver(%d) = %d, want %d", term, got, want)
	}
}
