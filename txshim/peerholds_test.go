package txshim

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestVerifyAfterCatchUpUnheldWriteNoResync: a write that bypassed the shim on the master's
// database (a cron job, an operator's psql: DESIGN §5.2 "plain commits: writes that bypassed
// the shim") is not stopped by catch-up's hold; it is shipped as a plain commit from the
// stream. One that commits between the tail's drain and the snapshots is in the local snapshot
// and not yet on the peer: the verify after catch-up shows it as a difference, and that must
// not stop shipping onto a healthy peer (it has the write moments later).
func TestVerifyAfterCatchUpUnheldWriteNoResync(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k serial PRIMARY KEY, v text)`)
	installPair(t, p)
	cfg := verifyingShipperConfig(p)
	sh := NewShipper(cfg)
	sh.SetTerm(1)
	runShipper(t, sh)

	// A writer straight on the local database, as a cron job would be.
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if _, err := p.ldb.Exec(`INSERT INTO kv (v) VALUES ('cron')`); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	time.Sleep(200 * time.Millisecond)
	if err := sh.CatchUp(capCtx(t, 30*time.Second), noHold); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the verification after catch-up", 30*time.Second, func() bool { _, ok := sh.LastVerify(); return ok })
	stop.Store(true)
	wg.Wait()
	r, _ := sh.LastVerify()
	t.Logf("verify after catch-up: %v (err %v)", r.Diffs, r.Err)
	if err := sh.Err(); errors.Is(err, ErrNeedsResync) {
		t.Errorf("a healthy peer was called in need of resync: %v", err)
	}
	if !sh.PeerSynced() {
		t.Errorf("the peer is no longer synced after catch-up")
	}
	// The peer was healthy: once the writer stopped it holds every row.
	waitForLong(t, "the peer in step", 20*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM kv`) == queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`)
	})
}

// TestPeerHoldsRowsWithoutLSN: a peer upgraded from an earlier version (tandem install added
// the lsn column to tandem.decisions: its rows have none) holds a transaction the old sidecar
// shipped but whose slot position was not confirmed before it stopped. The new sidecar's
// catch-up meets it again and skips it (its decision row, without lsn, says the peer has it).
// The peer holds everything: a later catch-up (after its connections broke) must not take it
// for a peer that lost transactions because no row of this site carries an lsn.
func TestPeerHoldsRowsWithoutLSN(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	// What the earlier version shipped: the change and its decision row, without lsn.
	xid := queryOne[int64](t, p.ldb, `WITH i AS (INSERT INTO kv VALUES (1, 'one')) SELECT txid_current() % 4294967296`)
	p.peer.Exec(t, `INSERT INTO kv VALUES (1, 'one')`)
	p.peer.Exec(t, `INSERT INTO tandem.decisions (gid) VALUES ('`+plainGID("a", uint32(xid))+`')`)

	sh := pairShipper(p, 1, 3*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(capCtx(t, 30*time.Second), noHold); err != nil {
		t.Fatal(err)
	}
	t.Logf("after the first catch-up: %+v", sh.Stats())
	requireSame(t, p)
	// The peer restarts (its connections break); the master catches it up.
	p.peer.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'app' AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	// The test's own pooled connections to the peer went too: closed, so that its queries
	// below open new ones (lib/pq reports a read on a reset connection as an error, and
	// database/sql does not retry it).
	p.pdb.SetMaxIdleConns(0)
	p.pdb.SetMaxIdleConns(2)
	p.local.Exec(t, `INSERT INTO kv VALUES (3, 'three')`)
	waitForLong(t, "the shipper down or the row shipped", 20*time.Second, func() bool {
		return !sh.PeerSynced() || queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`) == 2
	})
	err := sh.CatchUp(capCtx(t, 30*time.Second), noHold)
	if errors.Is(err, ErrNeedsResync) || errors.Is(sh.Err(), ErrNeedsResync) {
		t.Fatalf("catch-up: %v (Err %v); the peer holds everything", err, sh.Err())
	}
	if err != nil {
		t.Fatal(err)
	}
	requireSame(t, p)
}
