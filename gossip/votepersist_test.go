package gossip

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestRestartedWitnessKeepsVote: a witness votes once per term, across restarts too. It voted
// for site1's claim of term 6 (site1 took it on that vote and its own), then restarted before
// site1's record of term 6 reached it; site1 was then cut off (it fences itself within
// fence_delay), and site2, back with its record of term 5, claimed term 6. The restarted
// witness had forgotten its vote (kept in memory only; the wait of fence_delay after a start
// lets a cut-off master fence, but does not bring the vote back) and voted for site2 in term 6:
// two masters of one term, which neither the databases' term fence nor the split-brain check
// (a newer term) tells apart. It must keep its vote for term 6, so that site2 claims term 7.
func TestRestartedWitnessKeepsVote(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "witness", 0, freeAddr(t), "127.0.0.1:1", "127.0.0.1:2")
	cfg.Kind, cfg.Priority = config.KindWitness, 0
	cfg.Gossip.Witness, cfg.Gossip.FenceDelay = true, time.Second
	old := time.Now().Add(-time.Hour)
	rec5 := TermRecord{Term: 5, Master: "site2", PeerSynced: true, Seq: 1}
	claimant := func(site string, prio int) *peer {
		return &peer{meta: Meta{Site: site, Priority: prio, ServerHealthy: true, DBReachable: true, Role: RoleBackup,
			Record: rec5, Claim: 6}, hasMeta: true, mlAlive: true, alive: true, since: old}
	}

	w, ml := roundNode(t, cfg, Options{Logger: testLogger(t)})
	w.mu.Lock()
	w.start = old
	w.meta.Record = rec5
	w.peers["site1"] = claimant("site1", 1)
	// Seen too: a witness with no vote on record votes only once it has seen every voter.
	w.peers["site2"] = &peer{meta: Meta{Site: "site2", Priority: 2, ServerHealthy: true, DBReachable: true, Role: RoleBackup,
		Record: rec5}, hasMeta: true, mlAlive: true, alive: true, since: old}
	w.mu.Unlock()
	w.decide(t.Context(), ml)
	w.mu.Lock()
	vt, vf := w.meta.Vote, w.meta.VoteFor
	w.mu.Unlock()
	if vt != 6 || vf != "site1" {
		t.Fatalf("the witness votes (%d, %q), want (6, site1)", vt, vf)
	}
	ml.Shutdown()

	// Restarted, up for longer than fence_delay: only site2 is there, claiming term 6.
	cfg.Gossip.Bind = freeAddr(t)
	w2, ml2 := roundNode(t, cfg, Options{Logger: testLogger(t)})
	w2.mu.Lock()
	w2.start = old
	w2.meta.Record = rec5
	w2.peers["site2"] = claimant("site2", 2)
	w2.mu.Unlock()
	w2.decide(t.Context(), ml2)
	w2.mu.Lock()
	vt, vf = w2.meta.Vote, w2.meta.VoteFor
	w2.mu.Unlock()
	if vt == 6 && vf != "site1" {
		t.Fatalf("the restarted witness votes for %s in term 6, having voted for site1 in it before its restart", vf)
	}
}

// TestVoteSaveFailureLoggedOnce: a vote that cannot be kept (data_dir on a failing disk) is not
// cast, and tried again every round; the error was logged every round too (20 times a second
// with the fast profile, 4 with lan) for as long as the disk failed. It is logged once, and
// once more when the vote is kept again.
func TestVoteSaveFailureLoggedOnce(t *testing.T) {
	t.Parallel()
	cfg := siteConfig(t, "witness", 0, freeAddr(t), "127.0.0.1:1", "127.0.0.1:2")
	cfg.Kind, cfg.Priority = config.KindWitness, 0
	cfg.Gossip.Witness, cfg.Gossip.FenceDelay = true, time.Second
	old := time.Now().Add(-time.Hour)
	rec5 := TermRecord{Term: 5, Master: "site2", PeerSynced: true, Seq: 1}
	var logs logBuffer
	w, ml := roundNode(t, cfg, Options{Logger: logs.logger()})
	w.mu.Lock()
	w.start = old
	w.meta.Record = rec5
	w.peers["site1"] = &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: true, DBReachable: true, Role: RoleBackup,
		Record: rec5, Claim: 6}, hasMeta: true, mlAlive: true, alive: true, since: old}
	// Seen too: a witness with no vote on record votes only once it has seen every voter.
	w.peers["site2"] = &peer{meta: Meta{Site: "site2", Priority: 2, ServerHealthy: true, DBReachable: true, Role: RoleBackup,
		Record: rec5}, hasMeta: true, mlAlive: true, alive: true, since: old}
	w.mu.Unlock()
	// vote.json cannot be replaced: a directory that is not empty stands in its place.
	block := filepath.Join(cfg.DataDir, VoteFile, "x")
	if err := os.MkdirAll(block, 0o700); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		w.decide(t.Context(), ml)
	}
	if n := strings.Count(logs.String(), "vote not cast"); n != 1 {
		t.Fatalf("10 rounds failing to keep the vote logged it %d times, want 1:\n%s", n, logs.String())
	}
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, VoteFile)); err != nil {
		t.Fatal(err)
	}
	w.decide(t.Context(), ml)
	w.mu.Lock()
	vt, vf := w.meta.Vote, w.meta.VoteFor
	w.mu.Unlock()
	if vt != 6 || vf != "site1" {
		t.Fatalf("with the disk back the witness votes (%d, %q), want (6, site1)", vt, vf)
	}
	if !strings.Contains(logs.String(), "vote kept again") {
		t.Errorf("the vote kept again after failures is not logged:\n%s", logs.String())
	}
}
