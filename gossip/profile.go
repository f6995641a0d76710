package gossip

import (
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/tandem-ha/tandem/config"
)

// profile is a memberlist timing preset plus the timings Tandem derives
// from it.
type profile struct {
	ml *memberlist.Config
	// probeEvery is the interval of the direct peer probe; probeFailures
	// consecutive failures make the peer not alive in the view (without a
	// witness) and not counted towards the majority (with one).
	probeEvery    time.Duration
	probeFailures int
	// fenceDelay is the least time a restarted member waits before it votes
	// (it learns the cluster meanwhile): config.DefaultFenceDelay of the
	// profile; a longer configured fence_delay makes it wait that long.
	fenceDelay time.Duration
	// tick re-runs the decision for the time-based rules.
	tick time.Duration
	// settle is View.Settle: more than twice the time a metadata update
	// takes to reach the other members (a few gossip intervals).
	settle time.Duration
}

// fenceNotice is the longest a cut-off master takes to notice it lost the
// majority and fence itself: probeFailures direct probes, the last one's
// timeout, and one decision tick. fence_delay must not be shorter.
func (p profile) fenceNotice() time.Duration {
	return time.Duration(p.probeFailures)*p.probeEvery + p.ml.ProbeTimeout + p.tick
}

// newProfile returns the preset named by cfg.Gossip.Profile ("" = lan).
func newProfile(name string) (profile, error) {
	switch name {
	case config.ProfileLAN, "":
		c := memberlist.DefaultLANConfig()
		return profile{ml: c, probeEvery: c.ProbeInterval, probeFailures: 3, fenceDelay: config.DefaultFenceDelay(config.ProfileLAN), tick: 250 * time.Millisecond, settle: time.Second}.withReclaim(), nil
	case config.ProfileWAN:
		c := memberlist.DefaultWANConfig()
		return profile{ml: c, probeEvery: c.ProbeInterval, probeFailures: 3, fenceDelay: config.DefaultFenceDelay(config.ProfileWAN), tick: time.Second, settle: 3 * time.Second}.withReclaim(), nil
	case config.ProfileFast:
		// LAN with short timings: a killed member fails 3 direct probes in
		// ~0.7 s and memberlist declares it dead in ~1-2 s on a quiet network.
		c := memberlist.DefaultLANConfig()
		c.TCPTimeout = time.Second
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 2
		c.SuspicionMaxTimeoutMult = 2
		c.AwarenessMaxMultiplier = 2
		c.GossipInterval = 50 * time.Millisecond
		c.PushPullInterval = 2 * time.Second
		c.GossipToTheDeadTime = 2 * time.Second
		c.RetransmitMult = 3
		return profile{ml: c, probeEvery: c.ProbeInterval, probeFailures: 3, fenceDelay: config.DefaultFenceDelay(config.ProfileFast), tick: 50 * time.Millisecond, settle: 250 * time.Millisecond}.withReclaim(), nil
	}
	return profile{}, fmt.Errorf("gossip profile %q: want %s, %s or %s", name, config.ProfileLAN, config.ProfileWAN, config.ProfileFast)
}

// withReclaim sets how long a dead member's name stays bound to its old address: memberlist's
// default (never) refuses a site restarted at another address ("conflicting address") until
// the dead entry is reaped, GossipToTheDeadTime later (30 s with lan) — failback to it, or its
// vote, waited that long. A probe interval past its death is enough to tell a restart from a
// live member answering at two addresses.
func (p profile) withReclaim() profile {
	p.ml.DeadNodeReclaimTime = p.ml.ProbeInterval
	return p
}
