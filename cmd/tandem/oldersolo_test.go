package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/gossip"
)

// TestMayPromoteOlderSoloTerm: site2 took term 6 across a cut gossip link while site1's database
// was down, and committed alone; site1, which never heard of term 6, took term 5 while site2's
// database was down, and committed alone too (the gossip model's seed 50422 of "databases, two
// sites with gossip cuts"). site2, master of the newest term, then promotes again: site1's
// database answers with {5, site1, peer_synced = false}, but mayPromote let site2 through, term
// 5 being older than its own, and site1's term-5 commits were lost to the master. site2 took
// term 6 over its term-4 record: term 5 it never knew of, and it is refused until an operator
// accepts that loss (tandem promote -accept-loss 5), whose word lasts as long as the term taken
// over it: a restart does not forget it.
func TestMayPromoteOlderSoloTerm(t *testing.T) {
	t.Parallel()
	start, refused := site2OverTerms(t, 5, gossip.TermRecord{Term: 6, Master: "site2", PeerSynced: false, Seq: 1})
	master := func(node *gossip.Node, within time.Duration) gossip.State {
		for end := time.Now().Add(within); ; time.Sleep(50 * time.Millisecond) {
			if st := node.State(); st.Role == gossip.RoleMaster || time.Now().After(end) {
				return st
			}
		}
	}
	node, stop := start()
	var rerr error
	select {
	case rerr = <-refused:
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("site2 was not refused within 20 s over site1's term 5, gone on alone (state %+v)", node.State())
	}
	if st := node.State(); st.Role == gossip.RoleMaster {
		stop()
		t.Fatalf("site2 took term %d over site1's term 5, gone on alone, whose commits its database lacks", st.Term)
	}
	t.Logf("refused: %v", rerr)
	if !strings.Contains(rerr.Error(), "tandem promote -accept-loss 5") {
		stop()
		t.Fatalf("the refusal does not say -accept-loss 5: %v", rerr)
	}
	if st := master(node, 3*time.Second); st.Role == gossip.RoleMaster {
		stop()
		t.Fatalf("site2 master of term %d without the operator's word", st.Term)
	}
	// The operator does what the refusal says.
	if err := node.AcceptLoss(5); err != nil {
		stop()
		t.Fatalf("tandem promote -accept-loss 5, as the refusal says: %v", err)
	}
	st := master(node, 20*time.Second)
	stop()
	if st.Role != gossip.RoleMaster || st.Term <= 6 {
		t.Fatalf("site2 did not take control past its term 6 within 20 s of -accept-loss 5: %+v", st)
	}
	t.Logf("site2 master of term %d after -accept-loss 5", st.Term)
	// Restarted, site2 forgot the operator's word; the term it took over term 5 says it all the
	// same (site1's database still holds term 5: the stand-in BeforePromote writes nothing there).
	taken := st.Term
	node, stop = start()
	defer stop()
	// Taken over term 6, its own, the term knew no more of site1's terms than term 6 did (not
	// known here), but for the operator's word: term 5.
	if got := node.TookOver(taken); got != 5 {
		t.Errorf("after a restart, term %d taken over term %d, want 5", taken, got)
	}
	if st := master(node, 20*time.Second); st.Role != gossip.RoleMaster || st.Term <= taken {
		t.Fatalf("restarted, site2 did not take control again within 20 s: %+v (refused: %v)", st, drain(refused))
	}
}

// drain returns the last error in c, or nil.
func drain(c chan error) error {
	var last error
	for {
		select {
		case err := <-c:
			last = err
		default:
			return last
		}
	}
}
