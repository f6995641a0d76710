package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// demotedWhileWaiting is a fakePeer whose WaitShipped never sees a plain commit shipped, and
// which, while the commit waits for it, turns the shim read-only: a handover (setRole on
// release) started while the commit's wait for the peer was failing.
type demotedWhileWaiting struct {
	*fakePeer
	demote func()
}

func (p demotedWhileWaiting) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	p.demote()
	<-ctx.Done()
	return errNotInStep
}

// commitPeerLacks runs, through a dual shim of term 1 over a fresh cluster whose peer is
// peer(c, s) and with peer_down = mode, a write that commits plainly (it runs NOTIFY, so it
// cannot be prepared) and whose reply waits in vain for the peer: the client must hear 08007,
// the row committed on this site's database only. It returns the shim and how often it
// announced that the peer lacks a commit (OnPeerDown).
func commitPeerLacks(t *testing.T, mode string, peer func(c *pgtest.Cluster, s **testShim) Peer) (*testShim, int32) {
	t.Helper()
	c := testCluster(t)
	c.Exec(t, installSQL)
	var announced atomic.Int32
	var s *testShim
	s = startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer(c, &s), Logger: quietLogger(),
		OnPeerDown: func() bool { announced.Add(1); return true }}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = mode; cfg.CommitTimeout = time.Second })
	_, err := s.connect(t).Exec(capCtx(t, 30*time.Second), "BEGIN; INSERT INTO acct VALUES (1, 1); NOTIFY tandem_test; COMMIT")
	if pgCode(err) != "08007" {
		t.Fatalf("plain commit the peer did not take: %v, want 08007", err)
	}
	if n := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM acct WHERE id = 1`); n != 1 {
		t.Fatalf("%d rows committed locally, want 1", n)
	}
	return s, announced.Load()
}

// TestBlockPlainCommitAnnounced: with peer_down = "block", a plain commit in dual mode whose
// reply waited in vain for the peer is committed on this site's database only ("shipped once
// the peer is back"). The peer lacks a commit, so the term record must say peer_synced = false
// (DESIGN §3 rule 2) — else the other site, taking the master's word that it has everything,
// takes over without it. The shim announced nothing (OnPeerDown is its only way to): with
// block, the record stayed peer_synced = true for good.
func TestBlockPlainCommitAnnounced(t *testing.T) {
	t.Parallel()
	s, announced := commitPeerLacks(t, config.PeerDownBlock, func(c *pgtest.Cluster, _ **testShim) Peer {
		return notShipped{&fakePeer{c: c, t: t}}
	})
	if announced == 0 {
		t.Error("committed on this site's database only, and peer_synced = false never announced (OnPeerDown not called)")
	}
	if m, _ := s.Mode(); m != ModeDual {
		t.Errorf("peer_down = block: the shim went %s", m)
	}
}

// TestDemotedPlainCommitAnnounced: a plain commit in dual mode whose wait for the peer fails
// after the site began handing over (the shim is read-only by then) is committed on this site's
// database only. The peer lacks it, so the term record must say peer_synced = false before
// "released" goes out (DESIGN §3 rule 2), else the successor takes over without it. The shim
// announced nothing: peerDown returns false once the shim is not dual, and peerLacks returned
// early likewise — in both peer_down modes.
func TestDemotedPlainCommitAnnounced(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{config.PeerDownContinue, config.PeerDownBlock} {
		t.Run(mode, func(t *testing.T) {
			s, announced := commitPeerLacks(t, mode, func(c *pgtest.Cluster, s **testShim) Peer {
				return demotedWhileWaiting{fakePeer: &fakePeer{c: c, t: t}, demote: func() { (*s).SetMode(ModeReadOnly, 1) }}
			})
			if announced == 0 {
				t.Error("committed on this site's database only during a handover, and peer_synced = false never announced (OnPeerDown not called)")
			}
			if !s.WentSolo(1) {
				t.Error("the shim does not count term 1 as one it committed alone in")
			}
		})
	}
}
