package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tandem-ha/tandem/config"
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

// TestDemotedPlainCommitAnnounced: a write committed plainly in dual mode (it ran NOTIFY) whose
// wait for the peer fails after the site began handing over (the shim is read-only by then) is
// committed on this site's database only; the client hears 08007. The peer lacks it, so the
// term record must say peer_synced = false before "released" goes out (DESIGN §3 rule 2), else
// the successor takes over without it. The shim announced nothing: peerDown returns false once
// the shim is not dual, and peerLacks returns early likewise — in both peer_down modes.
func TestDemotedPlainCommitAnnounced(t *testing.T) {
	for _, mode := range []string{config.PeerDownContinue, config.PeerDownBlock} {
		t.Run(mode, func(t *testing.T) {
			c := testCluster(t)
			c.Exec(t, installSQL)
			var announced atomic.Int32
			var s *testShim
			peer := demotedWhileWaiting{fakePeer: &fakePeer{c: c, t: t}, demote: func() { s.SetMode(ModeReadOnly, 1) }}
			s = startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, Logger: quietLogger(),
				OnPeerDown: func() bool { announced.Add(1); return true }}, ModeDual, 1,
				func(cfg *config.TxShim) { cfg.PeerDown = mode; cfg.CommitTimeout = time.Second })
			ctx := capCtx(t, 30*time.Second)
			_, err := s.connect(t).Exec(ctx, "BEGIN; INSERT INTO acct VALUES (1, 1); NOTIFY tandem_test; COMMIT")
			if pgCode(err) != "08007" {
				t.Fatalf("plain commit the peer did not take: %v, want 08007", err)
			}
			if n := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM acct WHERE id = 1`); n != 1 {
				t.Fatalf("%d rows committed locally, want 1", n)
			}
			if announced.Load() == 0 {
				t.Error("committed on this site's database only during a handover, and peer_synced = false never announced (OnPeerDown not called)")
			}
			if !s.WentSolo(1) {
				t.Error("the shim does not count term 1 as one it committed alone in")
			}
		})
	}
}
