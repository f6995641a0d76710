package gossip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestNodeSaveRefusedAdoptsDatabaseRecord: both sites promoted term 7 at once (stale views
// after a heal, no witness); site1 wrote its record of term 7 into site2's database first, so
// site2's database refused site2's own record of that term (DESIGN §3 fencing in the
// databases; cmd/tandem's recordStore.Save). site2 published {7, site2} all the same, a record
// that no store holds, and Adopt never takes another master's record of a term this site
// claims as its own: site2 never published site1's records of term 7, so site1, going solo,
// waited in vain for site2's acknowledgement (AwaitRecord) while site2 was alive
// (TestModel with GOSSIP_MODEL_SEEDS=150, "databases, two sites with gossip cuts", seed 115).
// A promotion whose Save was refused for the record the store holds, of this term or a newer
// one and another master's, takes that record, as the database says.
func TestNodeSaveRefusedAdoptsDatabaseRecord(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	// The store is site2's database, which refuses another master's record of its term.
	store, site1 := sameTermStore(), sameTermSite1()
	var promoted bool
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			// Meanwhile site1 promoted term 7 too, and wrote it into site2's database
			// (cmd/tandem's BeforePromote writes the term into the peer database, unsynced).
			store.mu.Lock()
			store.rec = TermRecord{Term: term, Master: "site1"}
			store.mu.Unlock()
			return nil
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
			promoted = true
			return true, nil
		}})
	ctx := t.Context()
	sameTermJoin(ctx, n, ml, site1)
	if promoted || n.State().Role == RoleMaster {
		t.Fatalf("site2 promoted over a database that refused its term: %s", n.State().Role)
	}
	// site1 is master of term 7 where site2 sees it, then goes solo: it waits for site2 to
	// publish its record (AwaitRecord) before its first solo commit.
	sameTermSite1Master(ctx, n, ml, site1)
	n.mu.Lock()
	site1.meta.Record = TermRecord{Term: 7, Master: "site1", PeerSynced: false, Seq: nextSeq(site1.meta.Record.Seq)}
	n.mu.Unlock()
	for range 3 {
		n.decide(ctx, ml)
	}
	n.mu.Lock()
	published, want := n.meta.Record, site1.meta.Record
	n.mu.Unlock()
	store.mu.Lock()
	held := store.rec
	store.mu.Unlock()
	if published != want {
		t.Fatalf("site2 publishes %+v (its store holds %+v), not site1's %+v: site1's solo word is never acknowledged while site2 is alive",
			published, held, want)
	}
	if st := n.State(); st.Role == RoleMaster || st.Term != 7 {
		t.Fatalf("site2 %s of term %d, want backup of term 7", st.Role, st.Term)
	}
}

// TestNodeSaveRefusedAdoptionNoStandAside: site2's promotion of term 7 was refused by its
// database for site1's record of that term, and site2 took that record (as
// TestNodeSaveRefusedAdoptsDatabaseRecord). It is then a backup of site1's term, current once
// site1 says synced, as after the refusal of CheckPromote for a newer term, which takes the
// record without standing aside: site1 releasing the term (its server failed) must find site2
// ready to take over, not standing aside for promoteHold after a promotion that did not fail
// for anything of site2's own.
func TestNodeSaveRefusedAdoptionNoStandAside(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "site2", 2, freeAddr(t))
	store, site1 := sameTermStore(), sameTermSite1()
	var promoted []uint64
	n, ml := roundNode(t, cfg, Options{Logger: testLogger(t), Store: store,
		CheckPromote: func(ctx context.Context, term uint64) error {
			if term == 7 {
				// site1 promoted term 7 too, and wrote it into site2's database first.
				store.mu.Lock()
				store.rec = TermRecord{Term: term, Master: "site1"}
				store.mu.Unlock()
			}
			return nil
		},
		BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
			promoted = append(promoted, term)
			return true, nil
		}})
	ctx := t.Context()
	sameTermJoin(ctx, n, ml, site1)
	if len(promoted) != 0 {
		t.Fatalf("site2 promoted over a database that refused its term: %v", promoted)
	}
	// site1 is master of term 7, synced, then its server fails: it releases the term.
	sameTermSite1Master(ctx, n, ml, site1)
	n.mu.Lock()
	site1.meta.Role, site1.meta.ServerHealthy = RoleBackup, false
	site1.meta.Released = 7
	n.mu.Unlock()
	for range 3 {
		n.decide(ctx, ml)
	}
	if st := n.State(); st.Role != RoleMaster || st.Term != 8 {
		t.Fatalf("site2 %s of term %d (%s) after site1 released term 7, want master of term 8 (promotions %v)",
			st.Role, st.Term, st.Decision, promoted)
	}
}

// sameTermStore is site2's database for the tests here, holding site1's record of term 6:
// terms only grow there, and it refuses another master's record of the term it holds
// (txshim.WriteTermRecord).
func sameTermStore() *memStore {
	store := &memStore{rec: TermRecord{Term: 6, Master: "site1", PeerSynced: true, Seq: 1}}
	store.fail = func(_ int, r TermRecord) error {
		if r.Term < store.rec.Term || (r.Term == store.rec.Term && r.Master != store.rec.Master) {
			return fmt.Errorf("write term record %d/%s: database is at term %d (master %s): stale term", r.Term, r.Master, store.rec.Term, store.rec.Master)
		}
		return nil
	}
	return store
}

// sameTermSite1 is site1 as site2 sees it at the start of the tests here: a backup of term 6
// (its own, synced) whose server is down.
func sameTermSite1() *peer {
	return &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: false, DBReachable: true, Role: RoleBackup,
		Record: TermRecord{Term: 6, Master: "site1", PeerSynced: true, Seq: 1}}, hasMeta: true, mlAlive: true, alive: true, since: time.Now()}
}

// sameTermJoin makes n's server healthy, gives it site1 for a peer, and has it decide once:
// it tries to promote.
func sameTermJoin(ctx context.Context, n *Node, ml *memberlist.Memberlist, site1 *peer) {
	n.meta.ServerHealthy = true
	n.mu.Lock()
	n.peers["site1"] = site1
	n.mu.Unlock()
	n.decide(ctx, ml)
}

// sameTermSite1Master makes site1 master of term 7, synced, where n sees it, and has n decide
// three times.
func sameTermSite1Master(ctx context.Context, n *Node, ml *memberlist.Memberlist, site1 *peer) {
	n.mu.Lock()
	site1.meta.Role, site1.meta.ServerHealthy = RoleMaster, true
	site1.meta.Record = TermRecord{Term: 7, Master: "site1", PeerSynced: true, Seq: nextSeq(0)}
	n.mu.Unlock()
	for range 3 {
		n.decide(ctx, ml)
	}
}
