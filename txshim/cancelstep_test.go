package txshim

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/tandem-ha/tandem/config"
)

// selfCancel is a statement that fails as a client's cancel (or its statement_timeout) makes
// the statement it lands on fail: SQLSTATE 57014.
const selfCancel = "SELECT pg_catalog.pg_cancel_backend(pg_catalog.pg_backend_pid()), pg_catalog.pg_sleep(5)"

// cancelSteps makes the first n sends of each of s's own statements that start with prefix
// fail as cancelled (its ownStep hook); it counts the sends.
func cancelSteps(s *Shim, prefix string, n int) *atomic.Int32 {
	var sent atomic.Int32
	s.hooks.ownStep.set(func(q string) string {
		if strings.HasPrefix(q, prefix) && int(sent.Add(1)) <= n {
			return selfCancel
		}
		return q
	})
	return &sent
}

// TestCommitPreparedCancelled: a client's cancel (or its statement_timeout) that lands on the
// shim's own COMMIT PREPARED, the peer having prepared: the client was told 08007 and the
// transaction stayed prepared on both databases, its row locks held, until the resolver's next
// periodic pass. The step is sent again now; if cancels outlast the retries, the resolver is
// asked for a pass at once (OnInDoubt).
func TestCommitPreparedCancelled(t *testing.T) {
	t.Parallel()
	c, peer, _ := dualShim(t)
	var kicked atomic.Int32
	s := startShim(t, c, Options{Peer: peer, OnInDoubt: func() { kicked.Add(1) }}, ModeDual, 1)
	conn := s.connect(t)
	ctx := capCtx(t, 30*time.Second)

	sent := cancelSteps(s.Shim, "COMMIT PREPARED", 1)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)"); err != nil {
		t.Fatalf("a commit whose COMMIT PREPARED was cancelled once: %v", err)
	}
	if n := preparedCount(t, c); n != 0 || sent.Load() != 2 || kicked.Load() != 0 {
		t.Fatalf("after one cancel: %d prepared, COMMIT PREPARED sent %d times, OnInDoubt %d; want 0, 2, 0", n, sent.Load(), kicked.Load())
	}
	if calls := peer.take(); len(calls) != 2 || !strings.HasPrefix(calls[1], "commit ") {
		t.Fatalf("peer calls %v, want prepare and commit", calls)
	}

	sent = cancelSteps(s.Shim, "COMMIT PREPARED", ownRetries+1)
	_, err := conn.Exec(ctx, "INSERT INTO acct VALUES (2, 1)")
	if pgCode(err) != "08007" || kicked.Load() != 1 || preparedCount(t, c) != 1 {
		t.Fatalf("cancels on every try: %v (want 08007), OnInDoubt %d (want 1), %d prepared (want 1, for the resolver)", err, kicked.Load(), preparedCount(t, c))
	}
	c.Exec(t, "COMMIT PREPARED '"+s.onlyPrepared(t)+"'")
}

// TestPreparedThenBackendGone: the session's backend ended after the local PREPARE (terminated,
// or an idle_session_timeout the client set while the peer prepared): the gid stayed prepared
// and nothing asked the resolver for a pass until its next period. It is asked at once now.
func TestPreparedThenBackendGone(t *testing.T) {
	t.Parallel()
	c, peer, _ := dualShim(t)
	var kicked atomic.Int32
	s := startShim(t, c, Options{Peer: peer, OnInDoubt: func() { kicked.Add(1) }}, ModeDual, 1)
	db := c.Open(t, c.Database())
	s.hooks.failpoint.set(func(step string) error {
		if step == "after-local-prepare" {
			// The session's backend: its last statement is the PREPARE, or the shim's
			// idle_session_timeout guard pipelined behind it (idleOff).
			if _, err := db.Exec(`SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
WHERE query LIKE 'PREPARE TRANSACTION%' OR (query LIKE '%idle_session_timeout%' AND pid <> pg_backend_pid())`); err != nil {
				t.Errorf("terminate the session's backend: %v", err)
			}
		}
		return nil
	})
	conn := s.connect(t)
	if _, err := conn.Exec(capCtx(t, 30*time.Second), "INSERT INTO acct VALUES (1, 1)"); err == nil {
		t.Fatal("the commit succeeded with its backend gone")
	}
	waitFor(t, "OnInDoubt", func() bool { return kicked.Load() == 1 })
	if n := preparedCount(t, c); n != 1 {
		t.Fatalf("%d prepared, want the one the resolver settles", n)
	}
	c.Exec(t, "COMMIT PREPARED '"+s.onlyPrepared(t)+"'")
}

// notShipped is a fakePeer whose WaitShipped never sees a plain commit shipped.
type notShipped struct{ *fakePeer }

func (notShipped) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	return errNotInStep
}

// TestShipMarkCancelled: a write committed plainly in dual mode (here: it ran NOTIFY) is
// answered once the peer has it (awaitShipped), found by a mark written into the stream. A
// cancel on the shim's mark made it answer COMMIT at once — with peer_down = "block" and the
// peer not taking it, a commit only this site had. The mark is sent again now, and one that
// cannot be written counts as a wait in vain: 08007 here.
func TestShipMarkCancelled(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := notShipped{&fakePeer{c: c, t: t}}
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer, Logger: quietLogger()}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.PeerDown = config.PeerDownBlock; cfg.CommitTimeout = time.Second })
	conn := s.connect(t)
	ctx := capCtx(t, 30*time.Second)
	for i, n := range []int{1, ownRetries + 1} {
		cancelSteps(s.Shim, "SELECT pg_catalog.pg_logical_emit_message", n)
		_, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 1); NOTIFY tandem_test; COMMIT", i+1))
		if pgCode(err) != "08007" {
			t.Errorf("mark cancelled %d time(s), the peer not taking the commit: %v, want 08007", n, err)
		}
	}
}
