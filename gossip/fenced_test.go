package gossip

import (
	"strings"
	"testing"
	"time"
)

// TestDecideFencedBetterSiteDoesNotHoldBack: with a witness, site a (the better site, master of
// term 5) lost the majority and fenced itself; b still sees a through memberlist (a's gossip
// gets out, its probes' answers do not: a one-way loss, or a's probes timing out under load)
// and reads its published "fenced". A fenced site does not see a majority (rule 3), so it does
// not qualify: b, which sees itself and the witness and cannot reach a either, must take over,
// not wait behind a as "preferred" for as long as memberlist keeps a alive. (A fenced a that
// b reaches sees b too and regains its majority at its next round: b may wait for it.)
func TestDecideFencedBetterSiteDoesNotHoldBack(t *testing.T) {
	t.Parallel()
	for _, reach := range []struct {
		name string
		opt  func(*Member)
	}{{"a unreachable from b", unreachable}} {
		v := with(view("b",
			mem("a", 1, role(RoleFenced), record(5, "a", true), reach.opt),
			mem("b", 2, record(5, "a", true)),
			wit("w", record(5, "a", true))),
			func(v *View) { v.FenceDelay = 3 * time.Second })
		a := Decide(v)
		if a.Kind != Promote || a.Term != 6 {
			t.Errorf("%s: b's decision with a fenced: %v %d %q, want promote 6", reach.name, a.Kind, a.Term, a.Reason)
		}
		if strings.Contains(a.Reason, "preferred") {
			t.Errorf("%s: b waits behind a fenced site: %q", reach.name, a.Reason)
		}
	}
}

// TestFencedRecordsPeerLacks: a master cut off from the other site and the witness fences
// itself and drains its shim; a plain commit that finishes in that drain, its wait for the peer
// failed, is in this site's database only (the client told 08007), and the shim asks for
// peer_synced = false (txshim's peerLacks). SetPeerSynced refused it, the node being fenced,
// not master: the record went on saying synced, so once the links were back nothing showed that
// the other site had taken a newer term without that commit — no split brain, and failback
// handed control back to this site over a database the other lacks (DESIGN §3).
func TestFencedRecordsPeerLacks(t *testing.T) {
	t.Parallel()
	addrA, addrB, addrW, cfgA, cfgB, cfgW := witnessTrio(t)
	var cutA, cutB, cutW cutSet
	_, a, b := startTrio(t, cfgW, cfgA, cfgB, trioStart{w: Options{Cut: cutW.cut}, a: Options{Cut: cutA.cut}, b: Options{Cut: cutB.cut}})
	term := a.State().Term

	cutA.set(addrB, addrW)
	cutB.set(addrA)
	cutW.set(addrA)
	waitFor(t, 5*time.Second, "site1 fenced, cut off", func() bool { return a.State().Role == RoleFenced })
	if err := a.SetPeerSynced(false); err != nil {
		t.Errorf("SetPeerSynced(false) on the fenced master of term %d: %v", term, err)
	}
	if rec, err := NewFileStore(cfgA.DataDir).Load(); err != nil || rec.Term != term || rec.PeerSynced {
		t.Errorf("site1 stored %+v (%v), want term %d, peer_synced = false", rec, err, term)
	}
	waitFor(t, 10*time.Second, "site2 master of a newer term", func() bool {
		s := b.State()
		return s.Role == RoleMaster && s.Term > term
	})

	cutA.set()
	cutB.set()
	cutW.set()
	waitFor(t, 10*time.Second, "site1 notes the split brain of its term", func() bool { return a.State().SplitBrain == term })
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if s := a.State(); s.Role == RoleMaster {
			t.Fatalf("site1 took control back (term %d) over what it committed alone in term %d", s.Term, term)
		}
	}
}
