package gossip

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestNodeUnreadableMetaForgetsOld: a master killed and back as a member whose metadata this
// version cannot read (another version, say) was "ignored" — but what its earlier process had
// said stayed in the view, alive: master, healthy, so the other site never took over and kept
// routing to it. Unreadable metadata now tells nothing, as at a cold start.
func TestNodeUnreadableMetaForgetsOld(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := run(t, siteConfig(t, "site1", 2, addrA, addrB), Options{})
	b := run(t, siteConfig(t, "site2", 1, addrB, addrA), Options{})
	waitFor(t, 5*time.Second, "site2 master", master(b, a))
	b.kill()
	other := foreignMember(t, "site2", addrB)
	if _, err := other.Join([]string{addrA}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "site1 to take over", func() bool { return a.State().Role == RoleMaster })
}

// TestRejoinNotHeldByDeadPeer: site1's host down hard (its address drops packets), site2 and
// the witness start with site1 listed first: the re-join loop dialled the listed peers one
// after another, each waiting out the profile's TCPTimeout (10 s with lan) on site1 first —
// site2 without the witness's vote all that time. They find each other at once now.
func TestRejoinNotHeldByDeadPeer(t *testing.T) {
	t.Parallel()
	dead := blackholed(t)
	addrB, addrW := freeAddr(t), freeAddr(t)
	cfgB := siteConfig(t, "site2", 2, addrB, dead, addrW)
	cfgW := siteConfig(t, "witness", 0, addrW, dead, addrB)
	cfgW.Kind = config.KindWitness
	for _, c := range []*config.Config{cfgB, cfgW} {
		c.Gossip.Profile = config.ProfileLAN
		c.Gossip.Witness = true
		c.Gossip.FenceDelay = 4 * time.Second
	}
	w := run(t, cfgW, Options{})
	b := run(t, cfgB, Options{})
	start := time.Now()
	waitFor(t, 15*time.Second, "site2 and the witness to see each other", func() bool { return sees(b, "witness") && sees(w, "site2") })
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("site2 and the witness saw each other after %v: behind the dead site1's join", d.Round(time.Millisecond))
	}
}

// TestRestartAtNewAddress: a site killed and back at another address (a new host, a moved DNS
// name) was refused by memberlist ("conflicting address") until the dead entry was reaped,
// GossipToTheDeadTime later (30 s with lan): the other site saw it dead all that time, though
// it saw the other alive at once. A dead member's name is reclaimed after a probe interval now.
func TestRestartAtNewAddress(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrB2 := freeAddr(t), freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB, addrB2)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	for _, c := range []*config.Config{cfgA, cfgB} {
		c.Gossip.Profile = config.ProfileLAN
	}
	a := run(t, cfgA, Options{})
	b := run(t, cfgB, Options{})
	waitFor(t, 8*time.Second, "site1 master", master(a, b))
	b.kill()
	waitFor(t, 15*time.Second, "site1 to see site2 dead", func() bool { return !sees(a, "site2") })
	cfgB.Gossip.Bind = addrB2
	b2 := run(t, cfgB, Options{})
	waitFor(t, 5*time.Second, "the restarted site2 to see site1", func() bool { return sees(b2, "site1") })
	waitFor(t, 5*time.Second, "site1 to see site2 at its new address", func() bool { return sees(a, "site2") })
}
