package gossip

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestNodeHandoverDrainingSite: while the master drains a handover, both sites' States name it
// Draining (their proxies keep the connections made to its server, whose requests may be being
// served) with no master; once its BeforeRelease ends the drain (EndDrain), both name none —
// the proxies cut those connections — while site1 has still not released (on_demote runs), and
// site2 does not take over before it does.
func TestNodeHandoverDrainingSite(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	draining, endDrain, drained, release := make(chan struct{}), make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	var na atomic.Pointer[Node]
	a := runSteady(t, cfgA, Options{BeforeRelease: func(ctx context.Context, term uint64) {
		once.Do(func() {
			close(draining)
			select {
			case <-endDrain:
			case <-ctx.Done():
			}
			na.Load().EndDrain(term)
			close(drained)
			select {
			case <-release:
			case <-ctx.Done():
			}
		})
	}})
	na.Store(a.Node)
	b := runSteady(t, cfgB, Options{})
	waitFor(t, 15*time.Second, "site1 master", master(a, b))
	var endOnce, releaseOnce sync.Once
	defer endOnce.Do(func() { close(endDrain) })
	defer releaseOnce.Do(func() { close(release) })

	waitFor(t, 15*time.Second, "switchover to site2 accepted", func() bool { return a.Switchover("site2") == nil })
	within(t, draining, "site1's release to begin")
	if s := a.State(); s.Draining != "site1" || s.Master != "" {
		t.Fatalf("site1 drains its handover: its State says draining %q, master %q; want site1, none", s.Draining, s.Master)
	}
	waitFor(t, 10*time.Second, "site2 to see site1 draining", func() bool {
		s := b.State()
		if s.Role == RoleMaster {
			t.Fatalf("site2 took over before site1 released: %s", s.Reason)
		}
		return s.Draining == "site1" && s.Master == ""
	})

	endOnce.Do(func() { close(endDrain) })
	within(t, drained, "site1's drain to end")
	if s := a.State(); s.Draining != "" || s.Master != "" {
		t.Fatalf("site1 ended its drain: its State says draining %q, master %q; want none", s.Draining, s.Master)
	}
	waitFor(t, 10*time.Second, "site2 to see site1's drain end", func() bool {
		s := b.State()
		if s.Role == RoleMaster {
			t.Fatalf("site2 took over before site1 released: %s", s.Reason)
		}
		return s.Draining == "" && s.Master == ""
	})
	time.Sleep(500 * time.Millisecond)
	if s := b.State(); s.Role == RoleMaster || s.Master != "" || s.Draining != "" {
		t.Fatalf("before site1 released, site2 is %s, routes to master %q, draining %q", s.Role, s.Master, s.Draining)
	}
	releaseOnce.Do(func() { close(release) })
	waitFor(t, 15*time.Second, "site2 master after the handover", master(b, a))
	if s := b.State(); s.Draining != "" {
		t.Fatalf("site2 master names %q draining", s.Draining)
	}
}

// TestNodeFailureReleaseKeepsNothing: a master whose server fails releases the role at once
// (DESIGN §3 failover); its drain keeps no connection to that server, on neither site:
// neither State names it Draining while BeforeRelease runs.
func TestNodeFailureReleaseKeepsNothing(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	draining, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a := runSteady(t, cfgA, Options{BeforeRelease: func(ctx context.Context, term uint64) {
		once.Do(func() {
			close(draining)
			select {
			case <-release:
			case <-ctx.Done():
			}
		})
	}})
	b := runSteady(t, cfgB, Options{})
	waitFor(t, 15*time.Second, "site1 master", master(a, b))
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	// site2 has heard that site1 is master before site1's server fails.
	waitFor(t, 10*time.Second, "site2 to route to site1", func() bool { return b.State().Master == "site1" })

	a.SetServerHealthy(false)
	within(t, draining, "site1's release to begin")
	if s := a.State(); s.Draining != "" || s.Master != "" {
		t.Fatalf("site1 released for a failed server: its State says draining %q, master %q; want none", s.Draining, s.Master)
	}
	waitFor(t, 10*time.Second, "site2 to see site1 release", func() bool { return b.State().Master == "" })
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := b.State(); s.Draining != "" {
			t.Fatalf("site2 names %q draining after a failure's release", s.Draining)
		}
	}
	releaseOnce.Do(func() { close(release) })
}

// within waits up to 15 s for ch to close, failing the test after.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestNodeStopAfterFailureKeepsNothing: a master stopped (SIGTERM) after its server failed but
// before a decision round released the role for it is no planned handover: like the failure's
// release it would have made, its drain keeps no connection to that failed server (State
// names no site Draining while BeforeRelease runs, and DrainKeeps is not published).
func TestNodeStopAfterFailureKeepsNothing(t *testing.T) {
	t.Parallel()
	addrA, addrB := freeAddr(t), freeAddr(t)
	cfgA := siteConfig(t, "site1", 1, addrA, addrB)
	cfgB := siteConfig(t, "site2", 2, addrB, addrA)
	cfgA.Gossip.Failback, cfgB.Gossip.Failback = config.FailbackManual, config.FailbackManual
	type seen struct {
		draining string
		keeps    bool
		reason   string
	}
	got := make(chan seen, 1)
	var once sync.Once
	var na atomic.Pointer[Node]
	a := runSteady(t, cfgA, Options{BeforeRelease: func(ctx context.Context, term uint64) {
		once.Do(func() {
			n := na.Load()
			n.mu.Lock()
			keeps := n.meta.DrainKeeps
			n.mu.Unlock()
			s := n.State()
			got <- seen{s.Draining, keeps, s.Reason}
		})
	}})
	na.Store(a.Node)
	b := runSteady(t, cfgB, Options{})
	waitFor(t, 15*time.Second, "site1 master", master(a, b))
	waitFor(t, 10*time.Second, "site2 to route to site1", func() bool { return b.State().Master == "site1" })

	// The server's failure as the health check reports it, but no decision round yet: the
	// stop comes first (a supervisor stopping the sidecar with its failed server, say).
	a.mu.Lock()
	a.meta.ServerHealthy = false
	a.encodeLocked()
	a.mu.Unlock()
	a.stop()
	select {
	case s := <-got:
		t.Logf("release at the stop: %q", s.reason)
		if s.draining != "" || s.keeps {
			t.Fatalf("site1 stopped with its server failed: its release keeps the connections to that server (State draining %q, DrainKeeps %v); a failure's release keeps none",
				s.draining, s.keeps)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("site1 did not release the role at its stop")
	}
}

// TestNodeDrainCutOffEndsKeep: with a witness, a master cut off from the other site and the
// witness while its handover drains keeps no connection to its server past the moment it
// would have fenced itself (DESIGN §3 split brain: a site that loses the majority stops
// serving within the gossip timeout, and the new master waits fence_delay for that). Its drain
// kept them (State.Draining) for as long as its BeforeRelease ran — up to the drain's bound,
// tens of seconds — while the other site took over: reads of a stale database all that time.
func TestNodeDrainCutOffEndsKeep(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	var cutA, cutB, cutW cutSet
	draining, release := make(chan struct{}), make(chan struct{})
	var once, releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{w: Options{Cut: cutW.cut}, b: Options{Cut: cutB.cut},
		a: Options{Cut: cutA.cut, BeforeRelease: func(ctx context.Context, term uint64) {
			once.Do(func() {
				close(draining)
				select { // a drain that takes its time: a commit in flight waits for the peer
				case <-release:
				case <-ctx.Done():
				}
			})
		}}})
	term := a.State().Term
	waitFor(t, 15*time.Second, "switchover to site2 accepted", func() bool { return a.Switchover("site2") == nil })
	within(t, draining, "site1's release to begin")
	if s := a.State(); s.Draining != "site1" {
		t.Fatalf("site1 drains its handover: its State says draining %q, want site1", s.Draining)
	}

	cutA.set(addrB, addrW)
	cutB.set(addrA)
	cutW.set(addrA)
	waitFor(t, 15*time.Second, "site2 master of a newer term", func() bool {
		s := b.State()
		return s.Role == RoleMaster && s.Term > term
	})
	if s := a.State(); s.Draining != "" {
		t.Fatalf("site2 took over while site1, cut off, still keeps the connections to its server (State draining %q)", s.Draining)
	}
}
