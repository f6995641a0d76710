package txshim

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestBlockPlainCommitAnnounced: with peer_down = "block", a write committed plainly in dual
// mode (here: it ran NOTIFY, so it cannot be prepared) whose reply waited in vain for the peer
// is committed on this site's database only: the client hears 08007, "shipped once the peer is
// back". The peer lacks a commit, so the term record must say peer_synced = false (DESIGN §3
// rule 2) — else the other site, taking the master's word that it has everything, takes over
// without it. The shim announced nothing (OnPeerDown is its only way to): with block, the
// record stayed peer_synced = true for good.
func TestBlockPlainCommitAnnounced(t *testing.T) {
	c := testCluster(t)
	c.Exec(t, installSQL)
	var announced atomic.Int32
	peer := notShipped{&fakePeer{c: c, t: t}}
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, Logger: quietLogger(),
		OnPeerDown: func() bool { announced.Add(1); return true }}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
	ctx := capCtx(t, 30*time.Second)
	_, err := s.connect(t).Exec(ctx, "BEGIN; INSERT INTO acct VALUES (1, 1); NOTIFY tandem_test; COMMIT")
	if pgCode(err) != "08007" {
		t.Fatalf("plain commit the peer did not take: %v, want 08007", err)
	}
	if n := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM acct WHERE id = 1`); n != 1 {
		t.Fatalf("%d rows committed locally, want 1", n)
	}
	if announced.Load() == 0 {
		t.Error("committed on this site's database only, and peer_synced = false never announced (OnPeerDown not called)")
	}
	if m, _ := s.Mode(); m != ModeDual {
		t.Errorf("peer_down = block: the shim went %s", m)
	}
}
