package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/txshim"
)

// TestFencedByPeerWayOut: a master whose shim its catch-up fenced for the peer database's
// record of its own term taken by another master (a same-term split brain; fenceByPeer) stays
// fenced once the sites see each other again: the gossip keeps it master of that term (the
// weaker master stepped down, and a master is released only for a newer term), automatic
// failback stops for the split brain, and nothing lifts the fence — no writes, no failover.
// The operator's way out is named where the fence is shown (status fenced_by, the log line):
// tandem switchover here, which releases the term, then the site whose database is kept takes
// the next one (tandem promote -accept-loss of the term there, if its promotion is refused for
// the other's record of it). And it works from this state: the release drains and turns the
// shim read-only at once, what this site committed alone in the split-brain term is given up
// for shipping (the node's mark), and the next term's promotion here — the one -accept-loss
// lets through — makes a shim that takes writes again, on both databases.
func TestFencedByPeerWayOut(t *testing.T) {
	t.Parallel()
	d, pdb, client, _ := fencedByPeerSite2(t, `UPDATE tandem.state SET master = 'site1', peer_synced = false`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The node's word as route passes it on: master of term 1, which it committed alone in
	// while site1 took term 1 too (split brain in term 1).
	own := gossip.TermRecord{Term: 1, Master: "site2", PeerSynced: false}
	d.setRole(gossip.State{Role: gossip.RoleMaster, Term: 1, SplitBrain: 1, Record: own})

	st := d.status()
	t.Logf("status fenced_by %q", st.FencedBy)
	for _, w := range []string{"site1", "tandem switchover", "tandem promote -accept-loss 1"} {
		if !strings.Contains(st.FencedBy, w) {
			t.Errorf("status fenced_by %q does not name %q: the operator is not told the way out", st.FencedBy, w)
		}
	}

	// tandem switchover: the release of term 1.
	start := time.Now()
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	d.stepDown(sctx, 1)
	scancel()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the release of the fenced master took %v", took.Round(time.Millisecond))
	}
	if mode, term := d.shim.Mode(); mode != txshim.ModeReadOnly || term != 1 {
		t.Fatalf("after the release: shim %s in term %d, want read-only in term 1", mode, term)
	}
	d.setRole(gossip.State{Role: gossip.RoleBackup, Term: 1, SplitBrain: 1, Record: own})
	waitDrained(t, d)

	// This site's database kept: its promotion to term 2 (after -accept-loss 1).
	synced, err := d.promote(ctx, 2)
	t.Logf("promote(2): synced %v, %v", synced, err)
	if err != nil {
		t.Fatalf("promotion to term 2 after the release of the fenced term 1: %v", err)
	}
	d.setRole(gossip.State{Role: gossip.RoleMaster, Term: 2, SplitBrain: 1, Record: gossip.TermRecord{Term: 2, Master: "site2", PeerSynced: synced}})
	for range 3 {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		d.catchUp(cctx)
		ccancel()
	}
	if mode, term := d.shim.Mode(); mode != txshim.ModeDual || term != 2 {
		t.Fatalf("master of term 2, the peer database answering: shim %s in term %d, want dual in term 2 (status %+v)", mode, term, d.status())
	}
	if _, err := client.ExecContext(ctx, `INSERT INTO acct VALUES (20, 20)`); err != nil {
		t.Fatalf("commit as master of term 2: %v", err)
	}
	// Its COMMIT PREPARED on the peer may follow the client's answer.
	var n int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 20`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 || time.Now().After(deadline) {
			break
		}
	}
	if n != 1 {
		t.Errorf("the dual commit of term 2 is not on the peer database (status %+v)", d.status())
	}
	// What it committed alone in term 1 stays in its own database (the operator settles it).
	if err := pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 10`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the commit made alone in the split-brain term 1 on the peer database: %d rows, %v; want none", n, err)
	}
	if pterm, pmaster, _, err := txshim.ReadTermRecord(ctx, pdb); err != nil || pterm != 2 || pmaster != "site2" {
		t.Errorf("the peer database's term record: term %d of %s, %v; want term 2 of site2", pterm, pmaster, err)
	}
}
