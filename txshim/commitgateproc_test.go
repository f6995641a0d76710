package txshim

import (
	"context"
	"testing"
	"time"
)

// TestCommitGateProcCounted: a session counted in the gate already (a procedure sent before
// its request's Sync) passes enterProc while a hold waits for it, others do not; once it left,
// the hold is granted, and then no procedure passes, that session's included.
func TestCommitGateProcCounted(t *testing.T) {
	t.Parallel()
	var g commitGate
	a, b := &session{}, &session{}
	ctx := context.Background()
	if err := g.enterProc(ctx, a); err != nil {
		t.Fatal(err)
	}
	held := make(chan func(), 1)
	go func() {
		release, err := g.hold(ctx)
		if err != nil {
			t.Error(err)
		}
		held <- release
	}()
	waitForLong(t, "the hold pausing", 5*time.Second, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.pausing
	})
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	if err := g.enterProc(short(), a); err != nil {
		t.Fatalf("the counted session's next procedure waited for the hold that waits for it: %v", err)
	}
	if err := g.enterProc(short(), b); err == nil {
		t.Fatal("another session's procedure passed while a hold waited")
	}
	g.leaveSlow(a)
	select {
	case <-held:
		t.Fatal("hold granted with a procedure still counted")
	case <-time.After(100 * time.Millisecond):
	}
	g.leaveSlow(a)
	release := <-held
	if err := g.enterProc(short(), a); err == nil {
		t.Fatal("a procedure passed under a granted hold")
	}
	release()
	if g.active != 0 || g.slow != 0 || len(g.owners) != 0 {
		t.Fatalf("active %d slow %d owners %d after all left", g.active, g.slow, len(g.owners))
	}
}
