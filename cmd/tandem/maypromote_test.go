package main

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/gossip"
)

// TestMayPromoteNewerTermAcceptLoss: the other site's database names a term this site never
// heard of, whose master went on alone (site1 took term 6 across a cut gossip link while
// site2's database was down, so its promotion could not write the term there, committed alone
// unacknowledged, and its sidecar died). site2, master of term 5 as far as it knows, is refused
// by mayPromote, whose error says "tandem promote -accept-loss 6". But the node refused that
// word, term 6 being newer than any it knew of (and -accept-loss 5 is refused too: site2 is
// that term's master): as long as site1's database answered, site2 could never take control,
// whatever the operator did. The refusal now teaches the node the record, so that its status
// shows the term it waits for and the operator's word for it is taken.
func TestMayPromoteNewerTermAcceptLoss(t *testing.T) {
	t.Parallel()
	start, refused := site2OverTerms(t, 6, gossip.TermRecord{Term: 5, Master: "site2", PeerSynced: true, Seq: 1})
	node, stop := start()
	defer stop()
	var rerr error
	select {
	case rerr = <-refused:
	case <-time.After(20 * time.Second):
		t.Fatalf("site2 was not refused within 20 s (state %+v)", node.State())
	}
	t.Logf("refused: %v", rerr)
	if !strings.Contains(rerr.Error(), "tandem promote -accept-loss 6") {
		t.Fatalf("the refusal does not say -accept-loss 6: %v", rerr)
	}
	// The operator does what the refusal says.
	var aerr error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if aerr = node.AcceptLoss(6); aerr == nil {
			break
		}
	}
	if aerr != nil {
		t.Fatalf("tandem promote -accept-loss 6, as the refusal says: %v (and -accept-loss 5: %v); site2 can never take control while site1's database answers",
			aerr, node.AcceptLoss(5))
	}
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if st := node.State(); st.Role == gossip.RoleMaster {
			t.Logf("site2 master of term %d", st.Term)
			if st.Term <= 6 {
				t.Fatalf("site2 master of term %d, not past site1's term 6", st.Term)
			}
			return
		}
		if time.Now().After(end) {
			t.Fatalf("site2 did not take control within 20 s of -accept-loss 6: %+v", node.State())
		}
	}
}
