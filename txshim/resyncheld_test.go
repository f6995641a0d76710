package txshim

import (
	"errors"
	"testing"
	"time"
)

// TestResyncFailedKeepsPeerCheck: a resync that fails before its copy (here on a transaction
// prepared on the peer outside Tandem) must leave the check that spots a peer database restored
// from an earlier backup (checkPeerHolds) as it was. It set what the peer was seen to commit
// (peerHeld) to 0 before the peer-side checks and the copy and did not put it back, so the check
// was skipped until the next commit moved it.
func TestResyncFailedKeepsPeerCheck(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	sh := syncedShipper(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (2, 'two')`)
	waitFor(t, "the commit on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 2`) == 1 && sh.Backlog() == 0 && sh.heldOnPeer() != 0
	})
	held := sh.heldOnPeer()
	prepareLocal(t, p.pdb, "app_peer_1", `UPDATE kv SET v = 'peer' WHERE k = 1`)
	if err := sh.Resync(capCtx(t, 15*time.Second), nil); err == nil {
		t.Fatal("Resync with app_peer_1 prepared on the peer succeeded, want a refusal")
	}
	if got := sh.heldOnPeer(); got != held {
		t.Errorf("after a failed resync the peer is taken to hold %s, want %s (as before it)", got, held)
	}
	// The peer database restored from an earlier backup: it lacks the decision rows of this site.
	p.peer.Exec(t, `ROLLBACK PREPARED 'app_peer_1'`)
	p.peer.Exec(t, `DELETE FROM tandem.decisions`)
	if err := sh.checkPeerHolds(capCtx(t, 10*time.Second)); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("checkPeerHolds on a peer that lost its decision rows, after a failed resync = %v, want ErrNeedsResync", err)
	}
}
