package gossip

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestNodeKillIsACrash: the tests' kill (close crash, then end the context) stops a master
// like kill -9 — no release, no Leave — even when it lands while a decision round runs (here:
// a promotion's work), as it often does on a loaded machine. The decision loop then found
// both the crash and the end of the context ready and picked one at random: half such kills
// were clean stops that released the role, and a test that meant the other site to see a
// crash saw a handover.
func TestNodeKillIsACrash(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		cfg := siteConfig(t, "site1", 1, freeAddr(t)) // alone: it promotes itself
		inPromote, proceed := make(chan struct{}), make(chan struct{})
		var released atomic.Bool
		var tn *testNode
		tn = runTweaked(t, cfg, Options{
			BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
				close(inPromote)
				<-proceed
				return true, nil
			},
			BeforeRelease: func(context.Context, uint64) { released.Store(true) },
		}, func(*Node) {})
		select {
		case <-inPromote:
		case <-time.After(20 * time.Second):
			t.Fatal("site1 did not start promoting within 20 s")
		}
		close(tn.crash) // kill, as tn.kill does, while the round runs
		tn.cancel()
		close(proceed)
		if err := <-tn.done; err != nil {
			t.Fatal(err)
		}
		tn.done <- nil // for the cleanup's stop
		if released.Load() {
			t.Fatalf("kill %d during a decision round released the role: a clean stop, not a crash", i+1)
		}
	}
}
