package txshim

import (
	"context"
	"testing"
	"time"
)

// pruningPair starts a pair holding table kv, a Shipper that prunes every 100 ms (the default
// hour's retention, as tandem runs it) and has caught up, and a context for the test.
func pruningPair(t *testing.T) (*capPair, *Shipper, context.Context) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, PruneInterval: 100 * time.Millisecond, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	ctx := capCtx(t, 60*time.Second)
	if err := sh.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	return p, sh, ctx
}

// TestPruneOldPlainRowBeforeXidReuse pins what keeps plain commits' decision rows
// (plainGID: tandem_<site>_plain_<32-bit xid>) from meeting a reused xid. A 32-bit xid comes
// round again only 2^32 xids later, and PostgreSQL assigns none more than 2^31 past the
// oldest unfrozen one, which the source site's logical slot holds at its catalog_xmin: before
// the xid can be reused, the slot's restart_lsn is past the end of the transaction that had
// it, and the master's pruning (every PruneInterval while in step) deletes every row before
// the restart_lsn once it is older than the retention (an hour). So by the time an xid's 32
// bits come round, the row of their earlier transaction is gone, and the new plain commit is
// shipped, not taken for one the peer has.
//
// Here the earlier transaction's row is made by hand (a day old, its lsn far behind the slot)
// for the 32-bit xid of a transaction still open on the site's database; the master's own
// pruning removes it while that transaction is open, and its commit reaches the peer with a
// fresh decision row.
func TestPruneOldPlainRowBeforeXidReuse(t *testing.T) {
	t.Parallel()
	p, sh, ctx := pruningPair(t)

	gid := plainWithXID(t, p, `INSERT INTO kv VALUES (1, 'after the xid came round')`, func(gid string) {
		// The row of the transaction that had these 32 bits 2^32 xids ago.
		if _, err := p.pdb.ExecContext(ctx, `INSERT INTO tandem.decisions (gid, lsn, at) VALUES ($1, '0/1', now() - interval '1 day')`, gid); err != nil {
			t.Fatal(err)
		}
		// And the site's newest row, as old and as far behind the slot: pruning keeps it
		// (Shipper.checkPeerHolds reads it).
		p.peer.Exec(t, `INSERT INTO tandem.decisions (gid, lsn, at) VALUES ('tandem_a_plain_3', '0/2', now() - interval '2 hours')`)
		waitFor(t, "the master's pruning of the old row "+gid, func() bool {
			return queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = $1`, gid) == 0
		})
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = 'tandem_a_plain_3'`); n != 1 {
			t.Errorf("the site's newest decision row was pruned")
		}
	})
	waitFor(t, "the commit with the reused xid on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1`) == 1 && sh.Backlog() == 0
	})
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = $1 AND lsn > '0/1' AND at > now() - interval '1 hour'`, gid); n != 1 {
		t.Fatalf("%s: %d fresh decision rows on the peer, want 1", gid, n)
	}
	requireSame(t, p)
}

// TestPruneLSNLessPlainRow: a decision row without an lsn (an earlier version's, or a peer
// whose tandem.decisions lacked the column) was never pruned; once the 32-bit xid of its plain
// commit came round again, the new commit — acknowledged to its client — was taken for one the
// peer had, and never shipped. It goes now once a later row past the slot was applied more than
// the retention after it.
func TestPruneLSNLessPlainRow(t *testing.T) {
	t.Parallel()
	p, sh, ctx := pruningPair(t)
	plainWithXID(t, p, `INSERT INTO kv VALUES (1, 'after the xid came round')`, func(gid string) {
		// The lsn-less row of the transaction that had these 32 bits 2^32 xids ago, a day old,
		// and that of one shipped after it, two hours old, with its lsn.
		if _, err := p.pdb.ExecContext(ctx, `INSERT INTO tandem.decisions (gid, at) VALUES ($1, now() - interval '1 day')`, gid); err != nil {
			t.Fatal(err)
		}
		p.peer.Exec(t, `INSERT INTO tandem.decisions (gid, lsn, at) VALUES ('tandem_a_plain_3', '0/1', now() - interval '2 hours')`)
		waitFor(t, "the master's pruning of the old row "+gid, func() bool {
			return queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = $1`, gid) == 0
		})
	})
	waitFor(t, "the commit with the reused xid on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv WHERE k = 1`) == 1 && sh.Backlog() == 0
	})
	requireSame(t, p)
}
