package txshim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// heldPeer is a fakePeer whose Prepare waits until hold is closed: the dual commits in it
// hold their local prepared transactions meanwhile, as under a slow peer.
type heldPeer struct {
	fakePeer
	hold chan struct{}
}

func (p *heldPeer) Prepare(ctx context.Context, gid string) error {
	select {
	case <-p.hold:
	case <-ctx.Done():
		return &PeerError{GID: gid, Step: "wait", Err: ctx.Err()}
	}
	return p.fakePeer.Prepare(ctx, gid)
}

// TestLocalPreparedSlots: every dual commit holds a prepared transaction on the local database
// from its PREPARE TRANSACTION until its COMMIT PREPARED, the peer's prepare in between; with
// more sessions committing at once than the local max_prepared_transactions, the PREPAREs past
// it failed (53200, "maximum number of prepared transactions reached") and the clients'
// transactions were lost. A commit now waits, within the commit timeout, for one of them.
func TestLocalPreparedSlots(t *testing.T) {
	t.Parallel()
	const limit, clients = 2, 5
	c := pgtest.Start(t, pgtest.WithMaxPreparedTransactions(limit))
	c.Exec(t, installSQL)
	peer := &heldPeer{fakePeer: fakePeer{c: c, t: t}, hold: make(chan struct{})}
	var once sync.Once
	let := func() { once.Do(func() { close(peer.hold) }) }
	t.Cleanup(let)
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)

	errs := make(chan error, clients)
	for i := range clients {
		conn := s.connect(t)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO acct VALUES (%d, 1)", i))
			errs <- err
		}()
	}
	// limit commits are in the peer's prepare, the rest wait for a local prepared transaction.
	waitFor(t, "the local prepared transactions taken", func() bool { return preparedCount(t, c) == limit })
	time.Sleep(300 * time.Millisecond)
	let()
	var failed error
	for range clients {
		failed = errors.Join(failed, <-errs)
	}
	if failed != nil {
		t.Fatalf("commits past the local max_prepared_transactions (%d) failed: %v", limit, failed)
	}
	if n := rowCount(t, c, "true"); n != clients {
		t.Fatalf("%d rows, want %d", n, clients)
	}
	calls := peer.take()
	prepared := map[string]bool{}
	committed := 0
	for _, call := range calls {
		if gid, ok := strings.CutPrefix(call, "prepare "); ok {
			prepared[gid] = true
		} else if gid, ok := strings.CutPrefix(call, "commit "); ok && prepared[gid] {
			committed++
		}
	}
	if len(calls) != 2*clients || len(prepared) != clients || committed != clients {
		t.Fatalf("peer calls %v, want %d dual commits", calls, clients)
	}
}

// TestLocalPreparedSlotsCommitBound: a commit's wait for a local prepared transaction and its
// wait for the peer's prepare shared no deadline — each had the whole commit timeout — so with
// the peer not answering (killed, blocked) a commit that waited its turn for the local
// database's max_prepared_transactions then waited the commit timeout again for the peer:
// about twice the configured bound before the client heard anything. Both now share the
// commit's one deadline (DESIGN §5.3; issue 3: an error or a commit within the timeout).
func TestLocalPreparedSlotsCommitBound(t *testing.T) {
	t.Parallel()
	const limit, later = 1, 2
	const timeout = 1500 * time.Millisecond
	c := pgtest.Start(t, pgtest.WithMaxPreparedTransactions(limit))
	c.Exec(t, installSQL)
	// A peer that never answers a prepare: its Prepare returns at its commit's deadline only.
	peer := &heldPeer{fakePeer: fakePeer{c: c, t: t}, hold: make(chan struct{})}
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer}, ModeDual, 1,
		func(cfg *config.TxShim) { cfg.CommitTimeout = timeout })

	type outcome struct {
		took time.Duration
		err  error
	}
	out := make(chan outcome, 1+later)
	run := func(i int) {
		conn := s.connect(t)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			_, err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO acct VALUES (%d, 1)", i))
			out <- outcome{time.Since(start), err}
		}()
	}
	// The first holds the local prepared transaction while the peer does not answer; the
	// others come a moment later and wait for it.
	run(0)
	waitFor(t, "the local prepared transaction taken", func() bool { return preparedCount(t, c) == limit })
	for i := range later {
		run(1 + i)
	}
	const slack = 700 * time.Millisecond
	var slowest time.Duration
	for range 1 + later {
		o := <-out
		t.Logf("commit took %v (err %v)", o.took.Round(time.Millisecond), o.err)
		slowest = max(slowest, o.took)
	}
	if slowest > timeout+slack {
		t.Fatalf("the slowest commit took %v, past the commit timeout %v (+%v)", slowest.Round(time.Millisecond), timeout, slack)
	}
}
