package gossip

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestReleaseWaitsForUnsyncedWord: the master records peer_synced = false (SetPeerSynced: a
// commit the peer lacks) while its local database is slow to take the word, and its server
// fails meanwhile: it hands over. "released T" went out with the record as it was before the
// word, peer_synced = true, and the other site took T+1 without that commit; the word came
// after (DESIGN §3 rule 2). The release now goes out with the word.
//
// The members' failure detection tolerates a loaded machine (steady): site1 starved of the
// CPU for a moment was taken for dead, and site2 took over a master it thought lost — the
// documented split brain of two sites without a witness, not a release.
func TestReleaseWaitsForUnsyncedWord(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	store := &slowStore{FileStore: NewFileStore(cfgA.DataDir), entered: make(chan struct{}, 1), release: make(chan struct{})}
	a := runSteady(t, cfgA, Options{Store: store})
	b := runSteady(t, cfgB, Options{})
	waitFor(t, 30*time.Second, "site1 master", master(a, b))
	if !a.State().Record.PeerSynced {
		t.Fatal("site1's record says peer_synced = false before the test")
	}
	term := a.State().Term

	store.slow.Store(true)
	saved := make(chan error, 1)
	go func() { saved <- a.SetPeerSynced(false) }()
	select {
	case <-store.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("SetPeerSynced did not save")
	}
	a.SetServerHealthy(false) // releases at once
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if st := b.State(); st.Role == RoleMaster {
			t.Fatalf("site2 took term %d while site1's peer_synced = false of term %d was being saved: site1 released with %+v",
				st.Term, term, a.State().Record)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(store.release)
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if st := b.State(); st.Role == RoleMaster {
			t.Fatalf("site2 took term %d over site1's peer_synced = false of term %d", st.Term, term)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
