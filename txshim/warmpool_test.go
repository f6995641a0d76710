package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestCatchUpWarmsApplyPool: catch-up dials every apply connection before the peer is marked
// synced, so that the first dual commits after it over a slow link take one round trip, as
// later ones do, rather than a connection's few (startup, session setup, the check of what
// the peer holds, the catalog read). Catch-up ships on one connection at a time; the pool hands
// its slots out in turn, so the next Conns-1 applies each dialled first. With a commit_timeout
// between the two — here 3 round trips — each of them ran out of time: the commit went solo,
// the Shipper down, and the next catch-up (which closes the idle connections first) left the
// pool as cold as before: dual commit never held.
func TestCatchUpWarmsApplyPool(t *testing.T) {
	t.Parallel()
	p, link, peerDSN, ctx := slowLinkPair(t)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: peerDSN, Conns: 3,
		OpTimeout: 10 * time.Second, SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sh.goDown("test: the peer was unreachable", nil) // the shim commits alone meanwhile
	for i := 1; i <= 5; i++ {
		if _, err := p.ldb.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 'solo')`, i); err != nil {
			t.Fatal(err)
		}
	}
	const oneWay = 100 * time.Millisecond
	link.SetDelay(oneWay)
	defer link.SetDelay(0)
	if err := sh.CatchUp(ctx, nil); err != nil || !sh.PeerSynced() {
		t.Fatalf("catch-up: %v (synced %v)", err, sh.PeerSynced())
	}
	const commitTimeout = 6 * oneWay // 3 round trips
	for i := 1; i <= 4; i++ {
		gid := gidFor("a", 1, uint64(i))
		prepareLocal(t, p.ldb, gid, fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'dual')`, 100+i))
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, commitTimeout)
		err := sh.Prepare(pctx, gid)
		cancel()
		if err != nil {
			p.ldb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
			t.Fatalf("dual commit %d after catch-up over a %v round trip (commit_timeout %v): %v after %v",
				i, 2*oneWay, commitTimeout, err, time.Since(start).Round(time.Millisecond))
		}
		if _, err := p.ldb.Exec("COMMIT PREPARED " + sqlLiteral(gid)); err != nil {
			t.Fatal(err)
		}
		sh.Commit(gid)
	}
	waitFor(t, "the dual commits committed on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`) == 9
	})
	link.SetDelay(0)
	requireSame(t, p)
}
