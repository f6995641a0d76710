package gossip

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDecideWaitsForPromotionInProgress: site b, master of term 8, was fenced for a moment
// and, back, claims the next term as the holder; it won the votes for term 10 (its own and the
// witness's) and its promotion's work runs (a master only once that is done). Site a, better,
// qualifies for failback_delay meanwhile: it must not claim a newer term, which the witness
// votes for anew (the newest claim), and promote beside b (DESIGN §3: at no instant two
// masters). Before, its claim of term 9 found the votes spent on term 10, claimed term 11,
// won it and promoted, while b went on to take term 10: both master.
func TestDecideWaitsForPromotionInProgress(t *testing.T) {
	t.Parallel()
	ready := t0.Add(time.Hour - time.Minute) // ready for longer than FailbackDelay
	a := mem("a", 1, record(8, "b", true), readySince(ready))
	b := mem("b", 2, record(8, "b", true), readySince(ready), claim(10), votes(10, "b"))
	w := wit("w", record(8, "b", true), votes(10, "b"))
	v := view("a", a, b, w)
	v.Settle = 250 * time.Millisecond
	for range 3 {
		got := Decide(v)
		if got.Kind == Claim || got.Kind == Promote {
			v.Members[0].Claim = got.Term
			v.ClaimedAt = v.Now.Add(-time.Second)
		}
		if got.Kind == Promote {
			t.Fatalf("site b won the votes for term 10 and is promoting: a %+v", got)
		}
		if got.Kind == Claim && got.Term > 10 {
			// The witness votes for the newest claim (Vote): a's claim of term 11 wins it.
			if vt, vf := Vote(view("w", v.Members[0], b, w), true); vt == got.Term && vf == "a" {
				t.Fatalf("site b won the votes for term 10 and is promoting: a claims term %d (%s), and the witness votes for it", got.Term, got.Reason)
			}
		}
	}
}

// TestNodeFailbackDuringPromotion: TestDecideWaitsForPromotionInProgress with real members.
// site2, master after a failover, is cut off for a moment (it fences itself) and, back,
// claims the next term as the holder; its promotion's work takes a few seconds. site1, back
// before, qualifies for failback_delay meanwhile, and took a newer term beside it: both
// master once their promotions' work was done.
func TestNodeFailbackDuringPromotion(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	cfgA.Gossip.FailbackDelay, cfgB.Gossip.FailbackDelay = 4*time.Second, 4*time.Second
	var slow atomic.Bool
	work := func(d time.Duration) func(ctx context.Context, term uint64) (bool, error) {
		return func(ctx context.Context, term uint64) (bool, error) {
			if slow.Load() {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
			return true, nil
		}
	}
	var cutA, cutB, cutW cutSet
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{within: 6 * time.Second, w: Options{Cut: cutW.cut},
		a: Options{Cut: cutA.cut, BeforePromote: work(5 * time.Second)}, b: Options{Cut: cutB.cut, BeforePromote: work(5 * time.Second)}})
	a.kill()
	waitFor(t, 8*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	a = run(t, cfgA, Options{Cut: cutA.cut, BeforePromote: work(5 * time.Second)})
	waitFor(t, 3*time.Second, "site1 back as backup", master(b, a))
	slow.Store(true)
	stop := make(chan struct{})
	spans := watchMasters([]*testNode{a, b}, stop)
	time.Sleep(300 * time.Millisecond)
	cutA.set(addrB)
	cutB.set(addrA, addrW)
	cutW.set(addrB)
	waitFor(t, 3*time.Second, "site2 fenced", func() bool { return b.State().Role == RoleFenced })
	cutA.set()
	cutB.set()
	cutW.set()
	time.Sleep(12 * time.Second)
	close(stop)
	requireOneMaster(t, spans())
}

// requireOneMaster logs the spans and reports two sites master at once.
func requireOneMaster(t *testing.T, all []roleSpan) {
	t.Helper()
	for _, s := range all {
		t.Logf("%s master of term %d from %s to %s", s.site, s.term, s.start.Format("15:04:05.000"), s.end.Format("15:04:05.000"))
	}
	for i, x := range all {
		for _, y := range all[i+1:] {
			if x.site != y.site && x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("%s master of term %d and %s master of term %d at once", x.site, x.term, y.site, y.term)
			}
		}
	}
}

// roleSpan is one stretch of time a member delivered master of a term.
type roleSpan struct {
	site       string
	term       uint64
	start, end time.Time
}

// watchMasters records, from every State a node delivers, when it acted as master of which
// term, until stop is closed.
func watchMasters(nodes []*testNode, stop chan struct{}) func() []roleSpan {
	var mu sync.Mutex
	var spans []roleSpan
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			var cur *roleSpan
			end := func(at time.Time) {
				if cur != nil {
					cur.end = at
					mu.Lock()
					spans = append(spans, *cur)
					mu.Unlock()
					cur = nil
				}
			}
			for {
				select {
				case s, ok := <-n.Changes():
					now := time.Now()
					if !ok {
						end(now)
						return
					}
					if cur != nil && (s.Role != RoleMaster || s.Term != cur.term) {
						end(now)
					}
					if cur == nil && s.Role == RoleMaster {
						cur = &roleSpan{site: s.Self, term: s.Term, start: now}
					}
				case <-stop:
					end(time.Now())
					return
				}
			}
		})
	}
	return func() []roleSpan {
		wg.Wait()
		return spans
	}
}

// TestNodeReleasedSiteWinsDuringPromotion: site2, master, releases its term (its server
// failed for a moment; site1 is down) and, healthy again, claims the next term but one (it
// skips the one it released the role for), wins its votes (its own and the witness's) and
// its promotion's work runs. site1 comes back meanwhile, better: rule 4 must hold it back
// (site2 won the votes and is taking the term), though site2 still publishes that it released
// the newest term held. Else site1 claims a newer term, which the witness votes for as the
// newest claim, and both sites end up master, of two terms, at once.
func TestNodeReleasedSiteWinsDuringPromotion(t *testing.T) {
	t.Parallel()
	_, _, _, cfgA, cfgB, cfgW := witnessTrio(t)
	var gate atomic.Bool
	work := func(in chan<- uint64, proceed <-chan struct{}) func(ctx context.Context, term uint64) (bool, error) {
		return func(ctx context.Context, term uint64) (bool, error) {
			if gate.Load() {
				select {
				case in <- term:
				default:
				}
				select {
				case <-proceed:
				case <-ctx.Done():
				}
			}
			return true, nil
		}
	}
	aIn, bIn := make(chan uint64, 1), make(chan uint64, 1)
	aGo, bGo := make(chan struct{}), make(chan struct{})
	goA, goB := sync.OnceFunc(func() { close(aGo) }), sync.OnceFunc(func() { close(bGo) })
	defer goA()
	defer goB()
	// Failure detection tolerates a loaded machine (steady), the set-up waits are generous:
	// members starved of the CPU flapped, and no site became master; site1's death now takes
	// a few seconds to find.
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{steady: true,
		a: Options{BeforePromote: work(aIn, aGo)}, b: Options{BeforePromote: work(bIn, bGo)}})
	a.kill()
	waitFor(t, 20*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	gate.Store(true)
	b.SetServerHealthy(false)
	waitFor(t, 10*time.Second, "site2 released its term", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.role != RoleMaster && released(Member{Meta: b.meta})
	})
	b.SetServerHealthy(true)
	var bTerm uint64
	select {
	case bTerm = <-bIn:
	case <-time.After(15 * time.Second):
		t.Fatal("site2 did not start promoting again within 15 s")
	}
	a = runSteady(t, cfgA, Options{BeforePromote: work(aIn, aGo)})
	select {
	case aTerm := <-aIn:
		t.Errorf("site1 started promoting to term %d while site2, which won the votes for term %d, was promoting", aTerm, bTerm)
	case <-time.After(8 * time.Second):
	}
	stop := make(chan struct{})
	spans := watchMasters([]*testNode{a, b}, stop)
	goB()
	waitFor(t, 15*time.Second, "site2 master", func() bool { return b.State().Role == RoleMaster })
	goA()
	time.Sleep(3 * time.Second)
	close(stop)
	requireOneMaster(t, spans())
}
