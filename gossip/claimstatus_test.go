package gossip

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestNodeClaimDecisionSaysWhy: a site whose claim of the next term waits for votes (the
// witness, its data_dir lost, votes only once it has seen every voter, and the lost master is
// not among them) says so in its State's Decision, as every other wait does. Before, a round
// that claimed left Decision empty, for as long as the claim waited: tandem status showed no
// reason, and tandem promote said nothing of what the site still waited for.
func TestNodeClaimDecisionSaysWhy(t *testing.T) {
	t.Parallel()
	_, _, _, cfgA, cfgB, cfgW := witnessTrio(t)
	w, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{})

	w.kill()
	if err := os.RemoveAll(cfgW.DataDir); err != nil {
		t.Fatal(err)
	}
	a.kill()
	waitFor(t, 5*time.Second, "site2 sees site1 gone", func() bool { return !sees(b, "site1") })
	time.Sleep(time.Second) // and memberlist has forgotten it (GossipToTheDeadTime, fast)
	run(t, cfgW, Options{})
	waitFor(t, 10*time.Second, "site2 claims the next term", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.meta.Claim != 0
	})
	time.Sleep(3 * time.Second) // the claim has settled long since; it waits for the witness's vote
	// On a loaded machine site2 may lose sight of the witness for a moment (its decision then
	// says it has no majority, then that it regained it less than fence_delay ago): what it
	// says once it sees the majority again, for longer than fence_delay, is what counts.
	var st State
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st = b.State()
		if st.Role == RoleMaster {
			t.Fatalf("site2 took term %d without the witness's vote", st.Term)
		}
		if strings.Contains(st.Decision, "votes") || time.Now().After(end) {
			break
		}
	}
	t.Logf("site2 waits: %s", st.Decision)
	if !strings.Contains(st.Decision, "votes") {
		t.Fatalf("site2 %s, its claim waiting for votes: decision %q, want it to say so", st.Role, st.Decision)
	}
}
