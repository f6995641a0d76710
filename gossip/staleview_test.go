package gossip

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestNodeReleaseLostToShortCut: the master's server fails while the link between the sites
// is down for under a second (lan profile) — shorter than it takes either side's probes to
// call the other unreachable. memberlist sends a metadata update a few times within a few
// gossip intervals (RetransmitMult) and never again: the release was lost, and the other site
// went on seeing a healthy master until the next push/pull, up to 30 s later (38 s in one
// run with lan's defaults) — no master at all meanwhile. The test makes push/pull rare so
// that its random phase cannot heal the view within the bound.
func TestNodeReleaseLostToShortCut(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	for _, c := range []*config.Config{cfgA, cfgB} {
		c.Gossip.Profile = config.ProfileLAN
	}
	rarePushPull := func(n *Node) { n.prof.ml.PushPullInterval = 10 * time.Minute }
	var cutA, cutB cutSet
	a := runTweaked(t, cfgA, Options{Cut: cutA.cut}, rarePushPull)
	b := runTweaked(t, cfgB, Options{Cut: cutB.cut}, rarePushPull)
	waitFor(t, 8*time.Second, "site1 master", master(a, b))
	time.Sleep(500 * time.Millisecond)

	cutA.set(addrB)
	cutB.set(addrA)
	a.SetServerHealthy(false)
	waitFor(t, time.Second, "site1 released", func() bool { return a.State().Role == RoleBackup })
	time.Sleep(900 * time.Millisecond) // memberlist's retransmissions (4 × 200 ms) are over
	cutA.set()
	cutB.set()
	d := waitFor(t, 6*time.Second, "site2 master after the link came back", func() bool { return b.State().Role == RoleMaster })
	t.Logf("site2 master %v after the link came back", d.Round(time.Millisecond))
}
