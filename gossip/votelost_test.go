package gossip

import (
	"os"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestWitnessWithLostDataDirWaitsForVoters: a witness voted for site1 in term 6 (site1 took
// it on that vote and its own, and went solo, which the witness kept), then lost its data
// directory (a host rebuilt, a disk replaced) and restarted while site1 was cut off and
// fenced, and site2, back with its record of term 5, claimed term 6 again. Up for longer than
// fence_delay, the witness voted for site2 in term 6: its vote and its record of term 6 were
// gone with vote.json and state.json, and site2's view could not show them either. Two
// masters of term 6, which neither the databases' term fence nor the split-brain check (a
// newer term) tells apart, and site1's solo commits buried. A voter with no vote on record
// cannot tell a first start from a lost one: it votes only once it has seen every other voter
// since its start (and learned the newest term from them).
func TestWitnessWithLostDataDirWaitsForVoters(t *testing.T) {
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

	// Before: both sites seen, the witness votes for site1 in term 6.
	w, ml := roundNode(t, cfg, Options{Logger: testLogger(t)})
	w.mu.Lock()
	w.start = old
	w.meta.Record = rec5
	w.peers["site1"] = claimant("site1", 1)
	w.peers["site2"] = claimant("site2", 2)
	w.mu.Unlock()
	w.decide(t.Context(), ml)
	w.mu.Lock()
	vt, vf := w.meta.Vote, w.meta.VoteFor
	w.mu.Unlock()
	if vt != 6 || vf != "site1" {
		t.Fatalf("the witness votes (%d, %q), want (6, site1)", vt, vf)
	}
	ml.Shutdown()

	// The data directory is lost; the witness starts again on a new, empty one. Up for
	// longer than fence_delay, it sees only site2, claiming term 6 with its record of term 5.
	if err := os.RemoveAll(cfg.DataDir); err != nil {
		t.Fatal(err)
	}
	cfg.Gossip.Bind = freeAddr(t)
	w2, ml2 := roundNode(t, cfg, Options{Logger: testLogger(t)})
	w2.mu.Lock()
	w2.start = old
	w2.mu.Unlock()
	w2.decide(t.Context(), ml2) // a first round before anyone's metadata arrived
	w2.mu.Lock()
	w2.peers["site2"] = claimant("site2", 2)
	w2.mu.Unlock()
	for range 3 {
		w2.decide(t.Context(), ml2)
	}
	w2.mu.Lock()
	vt, vf = w2.meta.Vote, w2.meta.VoteFor
	w2.mu.Unlock()
	if vt == 6 {
		t.Fatalf("the witness restarted with an empty data_dir votes for %s in term 6, seeing only that site: it voted for site1 in term 6 before", vf)
	}

	// site1 back in sight, with its record of term 6: the witness learns it, votes again,
	// and no longer in term 6.
	rec6 := TermRecord{Term: 6, Master: "site1", PeerSynced: false, Seq: 2}
	w2.mu.Lock()
	w2.peers["site1"] = &peer{meta: Meta{Site: "site1", Priority: 1, ServerHealthy: true, DBReachable: true, Role: RoleFenced,
		Record: rec6}, hasMeta: true, mlAlive: true, alive: true, since: old}
	p := w2.peers["site2"]
	p.meta.Claim = 7
	w2.mu.Unlock()
	w2.decide(t.Context(), ml2)
	w2.mu.Lock()
	vt, vf, rec := w2.meta.Vote, w2.meta.VoteFor, w2.meta.Record
	w2.mu.Unlock()
	if rec.Term != 6 || vt != 7 || vf != "site2" {
		t.Fatalf("the witness, seeing both sites again, holds term %d and votes (%d, %q); want term 6, vote (7, site2)", rec.Term, vt, vf)
	}
}

// TestNodeWitnessLostDataDir: TestWitnessWithLostDataDirWaitsForVoters with real members. site1
// is cut off and fences; site2 takes a newer term with the witness's vote. The witness then
// loses its data directory and starts again on the same address while site2 is cut off (it
// fences) and site1 is back in sight of the witness only. site1 must not take the term site2
// holds: with the witness's vote and its own it made it master of that term a second time.
func TestNodeWitnessLostDataDir(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	var cutA, cutB, cutW cutSet
	w, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut}, b: Options{Cut: cutB.cut}})
	term := a.State().Term

	cutA.set(addrB, addrW)
	cutB.set(addrA)
	cutW.set(addrA)
	waitFor(t, 5*time.Second, "site1 fenced, cut off", func() bool { return a.State().Role == RoleFenced })
	waitFor(t, 10*time.Second, "site2 master of a newer term", func() bool {
		s := b.State()
		return s.Role == RoleMaster && s.Term > term
	})
	term2 := b.State().Term
	waitFor(t, 2*time.Second, "the witness names site2 as master", func() bool { return w.State().Master == "site2" })

	// The witness's host is rebuilt: its data directory is gone. Meanwhile site2 is cut off from
	// both, and site1 reaches the witness again.
	w.kill()
	if err := os.RemoveAll(cfgW.DataDir); err != nil {
		t.Fatal(err)
	}
	cutA.set(addrB)
	cutB.set(addrA, addrW)
	cutW.set(addrB)
	run(t, cfgW, Options{Cut: cutW.cut})
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := a.State(); s.Role == RoleMaster && s.Term <= term2 {
			t.Fatalf("site1 is master of term %d, which site2 took before the witness lost its data_dir (site2 now %s of term %d)",
				s.Term, b.State().Role, b.State().Term)
		}
	}

	// The links back: the witness has seen every voter, and votes again.
	cutA.set()
	cutB.set()
	cutW.set()
	waitFor(t, 15*time.Second, "a master of a term newer than site2's", func() bool {
		sa, sb := a.State(), b.State()
		return (sa.Role == RoleMaster && sa.Term > term2) || (sb.Role == RoleMaster && sb.Term > term2)
	})
}
