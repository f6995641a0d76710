package txshim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestPeerPreparedSlots: the peer's COMMIT PREPAREDs run after the clients' replies (DESIGN
// §5.3 step 3), so under load more dual commits can be prepared on the peer at once than the
// sessions committing — there were 64 on a peer whose max_prepared_transactions is 64, its
// PREPARE TRANSACTION failed with 53200 ("maximum number of prepared transactions reached"),
// and the Shipper took that for the peer gone: the shim went solo. A Prepare now waits, within
// its commit's time, for one of the peer's prepared transactions to finish (the limit read
// from the peer), and the Shipper stays online.
func TestPeerPreparedSlots(t *testing.T) {
	t.Parallel()
	const limit = 4
	p := kvPair(t, pgtest.WithMaxPreparedTransactions(limit))
	s := kvShipper(t, p)

	// run makes n dual commits from k on: the first held ones fill what the peer takes
	// prepared, their COMMIT PREPAREDs held back (as under load) until the rest are waiting.
	k := 0
	run := func(t *testing.T, held, n int) {
		t.Helper()
		release := make(chan struct{})
		var once sync.Once
		let := func() { once.Do(func() { close(release) }) }
		defer let()
		s.hooks.peerOp.set(func(string, bool) { <-release })
		defer s.hooks.peerOp.clear()
		for range held {
			k++
			gid := gidFor("a", 1, uint64(k))
			prepareBoth(t, p, s, gid, fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'v')`, k))
			s.Commit(gid)
		}
		errs := make(chan error, n)
		for range n {
			k++
			gid := gidFor("a", 1, uint64(k))
			prepareLocal(t, p.ldb, gid, fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'v')`, k))
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				err := s.Prepare(ctx, gid)
				if err == nil {
					_, err = p.ldb.Exec("COMMIT PREPARED " + sqlLiteral(gid))
					s.Commit(gid)
				} else {
					p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
				}
				errs <- err
			}()
		}
		time.Sleep(time.Second) // the Prepares wait for the peer's prepared transactions
		let()
		var failed error
		for range n {
			if err := <-errs; err != nil {
				failed = errors.Join(failed, err)
			}
		}
		if failed != nil {
			t.Fatalf("a dual commit past the peer's max_prepared_transactions (%d) failed: %v", limit, failed)
		}
		waitFor(t, "every transaction committed on the peer", func() bool {
			return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'tandem\_%'`) == 0 && s.Backlog() == 0
		})
		s.mu.Lock()
		link := s.link
		s.mu.Unlock()
		if link != linkOnline {
			t.Fatalf("the Shipper is %s, want online", linkName(link))
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
	}

	// More commits at once than the peer takes prepared: the Shipper's own.
	run(t, limit, 3)
	// One of the peer's prepared transactions is another's (left in doubt, say), which the
	// Shipper does not count: the peer's refusal (53200) is back-pressure too.
	peerConn, err := p.pdb.Conn(capCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer peerConn.Close()
	for _, q := range []string{"BEGIN", "PREPARE TRANSACTION 'not_tandem'"} {
		if _, err := peerConn.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { p.pdb.Exec("ROLLBACK PREPARED 'not_tandem'") })
	run(t, limit-1, 2)
	if _, err := p.pdb.Exec("ROLLBACK PREPARED 'not_tandem'"); err != nil {
		t.Fatal(err)
	}
	requireSame(t, p)
}

// TestSerialSmallPeer is TestAcceptance/serial (8 clients committing at once through the shim)
// against a peer that takes 4 prepared transactions at once: every commit is a dual one, and
// the shim stays dual (it went solo at the peer's first 53200). Ten commits a client, not
// fifty: without the Shipper's count of the peer's prepared transactions (and with a 53200 taken
// for the peer gone) the first 53200 came within the first few dozen commits.
func TestSerialSmallPeer(t *testing.T) {
	t.Parallel()
	e := startAccEnvWith(t, nil, []pgtest.Option{pgtest.WithMaxPreparedTransactions(4)})
	accSerialN(t, e, 10)
}

// TestPeerPreparedSlotsForeignOnly: the peer's prepared transactions all held by others than
// the Shipper's (left in doubt, another database's): none of the Shipper's COMMIT PREPAREDs
// is to come there, so nothing it waits for frees one. The peer's 53200 was taken for
// back-pressure all the same, and every dual commit waited out its whole time before the
// shim went solo — again after each catch-up. With none of its own held there, the Shipper
// now goes down at once, as it did for any 53200 before it counted them.
func TestPeerPreparedSlotsForeignOnly(t *testing.T) {
	t.Parallel()
	const limit = 2
	p := kvPair(t, pgtest.WithMaxPreparedTransactions(limit))
	s := kvShipper(t, p)

	// One dual commit first: the apply connections read the peer's limit.
	gid := gidFor("a", 1, 1)
	prepareBoth(t, p, s, gid, `INSERT INTO kv VALUES (1, 'v')`)
	s.Commit(gid)
	waitFor(t, "the first committed on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 && s.Backlog() == 0
	})
	for i := range limit {
		conn, err := p.pdb.Conn(capCtx(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		name := fmt.Sprintf("not_tandem_%d", i)
		for _, q := range []string{"BEGIN", "PREPARE TRANSACTION " + sqlLiteral(name)} {
			if _, err := conn.ExecContext(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { p.pdb.Exec("ROLLBACK PREPARED " + sqlLiteral(name)) })
	}

	gid = gidFor("a", 1, 2)
	prepareLocal(t, p.ldb, gid, `INSERT INTO kv VALUES (2, 'v')`)
	defer p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
	const commitTime = 4 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), commitTime)
	defer cancel()
	start := time.Now()
	err := s.Prepare(ctx, gid)
	took := time.Since(start)
	if err == nil {
		t.Fatal("prepared on a peer whose prepared transactions are all held")
	}
	if took > commitTime/2 {
		t.Fatalf("Prepare took %v to give up on a peer whose prepared transactions are all another's (commit time %v): %v", took.Round(time.Millisecond), commitTime, err)
	}
	s.mu.Lock()
	link := s.link
	s.mu.Unlock()
	if link == linkOnline {
		t.Fatal("the Shipper is still online")
	}
}

// TestPeerPreparedDisabled: a peer restarted with max_prepared_transactions = 0 refuses every
// PREPARE TRANSACTION with 55000 ("prepared transactions are disabled"), which Prepare took
// for a definite refusal of the transaction's rows: each dual commit was rolled back with
// "the sites have diverged" (XX000), the Shipper stayed online, and no write committed until
// the peer was fixed. The peer kept nothing of it and can take no dual commit: Prepare now
// answers with an unknown outcome and the Shipper goes down, so the master goes on alone
// (DESIGN §5.3 step 2).
func TestPeerPreparedDisabled(t *testing.T) {
	t.Parallel()
	p := kvPair(t)
	p.peer.Exec(t, "ALTER SYSTEM SET max_prepared_transactions = 0")
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	s := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 5 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	s.SetTerm(1)
	runShipper(t, s)

	gid := gidFor("a", 1, 1)
	prepareLocal(t, p.ldb, gid, `INSERT INTO kv VALUES (1, 'v')`)
	defer p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
	err := s.Prepare(capCtx(t, 10*time.Second), gid)
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Definite {
		t.Fatalf("Prepare on a peer with prepared transactions disabled: %#v (%v), want an unknown outcome", err, err)
	}
	s.mu.Lock()
	link := s.link
	s.mu.Unlock()
	if link == linkOnline {
		t.Fatal("the Shipper is still online")
	}
}

// kvPair starts a local and a peer cluster (the peer with opts), each with the table kv, and
// installs Tandem on both.
func kvPair(t *testing.T, opts ...pgtest.Option) *capPair {
	t.Helper()
	p := &capPair{local: pgtest.Start(t), peer: pgtest.Start(t, opts...)}
	p.ldb = p.local.Open(t, p.local.Database())
	p.pdb = p.peer.Open(t, p.peer.Database())
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	return p
}

// kvShipper runs a Shipper of site a over p, in term 1, until the test ends.
func kvShipper(t *testing.T, p *capPair) *Shipper {
	t.Helper()
	s := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 5 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	s.SetTerm(1)
	runShipper(t, s)
	return s
}
