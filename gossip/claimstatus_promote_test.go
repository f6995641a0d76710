package gossip

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNodeClaimDecisionNotStaleWhilePromoting: a claim that waited for votes past the settle
// time says so in its Decision (TestNodeClaimDecisionSaysWhy); once the vote is in, the site
// promotes, and its BeforePromote may take seconds (cmd/tandem: the resolver, catch-up). The
// status must not go on saying it waits for votes meanwhile: tandem promote -accept-loss
// stops polling at such a decision and tells the operator the site still waits.
func TestNodeClaimDecisionNotStaleWhilePromoting(t *testing.T) {
	t.Parallel()
	_, _, _, cfgA, cfgB, cfgW := witnessTrio(t)
	promoting := make(chan struct{}, 1)
	slow := func(ctx context.Context, term uint64) (bool, error) {
		if term > 1 {
			select {
			case promoting <- struct{}{}:
			default:
			}
			time.Sleep(2 * time.Second)
		}
		return true, nil
	}
	w, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{b: Options{BeforePromote: slow}})

	// The witness comes back with a longer fence_delay: it votes only that long after its
	// start, well after site2's claim of the next term has settled.
	w.kill()
	a.kill()
	waitFor(t, 5*time.Second, "site2 sees site1 gone", func() bool { return !sees(b, "site1") })
	time.Sleep(time.Second)
	cfgW.Gossip.FenceDelay = 4 * time.Second
	run(t, cfgW, Options{})
	waitFor(t, 10*time.Second, "site2's claim waits for votes", func() bool {
		return strings.Contains(b.State().Decision, "waits for votes")
	})
	select {
	case <-promoting:
	case <-time.After(10 * time.Second):
		t.Fatalf("site2 did not promote: %q", b.State().Decision)
	}
	time.Sleep(200 * time.Millisecond)
	if st := b.State(); st.Role != RoleMaster && strings.Contains(st.Decision, "waits for votes") {
		t.Fatalf("site2 promoting (its votes are in), status: %s, decision %q", st.Role, st.Decision)
	}
	waitFor(t, 5*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
}
