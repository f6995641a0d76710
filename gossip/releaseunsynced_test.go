package gossip

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestReleaseRecordsPeerLacks: a commit that finishes while the master drains a handover
// (BeforeRelease) may leave this site's database with a commit the peer's lacks (a plain
// commit whose wait for the peer failed: committed here, the client told 08007). The word
// peer_synced = false must go out with the release (DESIGN §3 rule 2). SetPeerSynced refused
// it, the node being backup already, so "released T" went out with peer_synced = true and the
// other site took T+1 without that commit.
//
// Failure detection tolerates a loaded machine (steady), as in TestReleaseWaitsForUnsyncedWord.
func TestReleaseRecordsPeerLacks(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	var a *testNode
	var setErr atomic.Value
	a = runSteady(t, cfgA, Options{BeforeRelease: func(ctx context.Context, term uint64) {
		err := a.SetPeerSynced(false)
		setErr.Store(struct{ error }{err})
	}})
	b := runSteady(t, cfgB, Options{})
	waitFor(t, 30*time.Second, "site1 master", master(a, b))
	if !a.State().Record.PeerSynced {
		t.Fatal("site1's record says peer_synced = false before the test")
	}
	term := a.State().Term

	a.SetServerHealthy(false) // releases at once
	waitFor(t, 20*time.Second, "site1 drained", func() bool { return setErr.Load() != nil })
	if err := setErr.Load().(struct{ error }).error; err != nil {
		t.Errorf("SetPeerSynced(false) while draining the release of term %d: %v", term, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if st := b.State(); st.Role == RoleMaster {
			t.Fatalf("site2 took term %d over a master that committed what site2 lacks (peer_synced = false said during its release)", st.Term)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
