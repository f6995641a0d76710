package gossip

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestNodePromotionAcrossFlap: a site whose promotion's work (BeforePromote) runs while it is
// cut off from both other members for longer than fence_delay, and that sees them again before
// the work ends, must not then act as master of its term: meanwhile the other site, with the
// witness, took a newer term (DESIGN §3: no member acts as master of a term older than one
// taken since). The recheck at the end of the promotion counted only the voters it saw then.
//
// Failure detection tolerates a loaded machine (steady), the waits for the set-up, the fences
// and the failovers are generous: with the fast profile members starved of the CPU flapped
// and no site became master. A cut-off member then takes ~5 s to fence itself, and steady
// raises fence_delay to that.
func TestNodePromotionAcrossFlap(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	var cutA, cutB, cutW cutSet
	inPromote, proceed := make(chan uint64, 4), make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(proceed) }) }
	defer release()
	var mu sync.Mutex
	var releasedTerms []uint64
	w, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{steady: true, w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut},
		b: Options{Cut: cutB.cut,
			BeforePromote: func(ctx context.Context, term uint64) (bool, error) {
				inPromote <- term
				select {
				case <-proceed:
				case <-ctx.Done():
				}
				return true, nil
			},
			BeforeRelease: func(ctx context.Context, term uint64) {
				mu.Lock()
				releasedTerms = append(releasedTerms, term)
				mu.Unlock()
			}}})
	term := a.State().Term

	// site1 cut off: it fences, and site2 starts promoting to a newer term.
	cutA.set(addrB, addrW)
	cutB.set(addrA)
	cutW.set(addrA)
	var bTerm uint64
	select {
	case bTerm = <-inPromote:
	case <-time.After(30 * time.Second):
		t.Fatal("site2 did not start promoting within 30 s of site1's cut")
	}
	// While site2's promotion works, the cut moves: site1 is back with the witness, site2 is
	// cut off from both. site1 takes a newer term than site2's.
	cutA.set(addrB)
	cutB.set(addrA, addrW)
	cutW.set(addrB)
	waitFor(t, 30*time.Second, "site1 master of a term newer than site2's promotion", func() bool {
		s := a.State()
		return s.Role == RoleMaster && s.Term > bTerm
	})
	aTerm := a.State().Term
	// The links back; site2 hears of site1's term, and its promotion's work ends.
	cutA.set()
	cutB.set()
	cutW.set()
	waitFor(t, 30*time.Second, "site2 sees site1 as master", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		p := b.peers["site1"]
		return p != nil && p.alive && !p.unreachable && p.meta.Role == RoleMaster && p.meta.Record.Term == aTerm
	})
	delivered := deliveredFor(b, release, 2*time.Second)
	_ = w
	for _, s := range delivered {
		t.Logf("site2 delivered: %s of term %d (%s)", s.Role, s.Term, s.Reason)
		if s.Role == RoleMaster && s.Term < aTerm {
			t.Errorf("site2 delivered master of term %d while site1 is master of term %d (first term %d)", s.Term, aTerm, term)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range releasedTerms {
		if r == bTerm {
			t.Errorf("site2 released term %d: it acted as its master after site1 took term %d", r, aTerm)
		}
	}
}
