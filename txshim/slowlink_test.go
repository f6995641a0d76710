package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/slowlink"
)

// slowLinkPair is a capture pair with table kv, installed over a slow link to the peer
// (returned, with the peer's DSN through it), and term 1 of site a recorded synced on both.
func slowLinkPair(t *testing.T) (p *capPair, link *slowlink.Link, peerDSN string, ctx context.Context) {
	t.Helper()
	p = startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	link = slowlink.Start(t, fmt.Sprintf("127.0.0.1:%d", p.peer.Port()))
	peerDSN = link.DSN(t, p.peer.DSN("app"))
	ctx = capCtx(t, 90*time.Second)
	if err := Install(ctx, "a", p.local.DSN("app"), peerDSN, quietLogger()); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.ldb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.pdb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	return p, link, peerDSN, ctx
}

// TestCatchUpSlowLink: catch-up over a link with latency (and bandwidth to spare) ships runs of
// small plain commits in one peer transaction each (applyRun), so that it is bound by what the
// peer makes durable rather than by round trips. A run sent one round trip per transaction
// needed up to runMax+1 round trips within one OpTimeout: over a link whose round trip is more
// than OpTimeout/(runMax+1) — 150 ms with the default 10 s — every run of a backlog ran out of
// time, and its transactions went one at a time, a few round trips each: a master committing
// alone a few transactions a second never caught up.
func TestCatchUpSlowLink(t *testing.T) {
	t.Parallel()
	p, link, peerDSN, ctx := slowLinkPair(t)
	const opTimeout = 3 * time.Second
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: peerDSN, Conns: 1,
		OpTimeout: opTimeout, SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sh.goDown("test: the peer was unreachable", nil) // the shim commits alone meanwhile
	const backlog = 3 * runMax
	for i := 1; i <= backlog; i++ {
		if _, err := p.ldb.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 'solo')`, i); err != nil {
			t.Fatal(err)
		}
	}
	// 40 ms each way: an 80 ms round trip, runMax+1 of them more than OpTimeout.
	const oneWay = 40 * time.Millisecond
	link.SetDelay(oneWay)
	start := time.Now()
	// Bandwidth to spare: a few round trips per run, and a few runs.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := sh.CatchUp(cctx, nil)
	took := time.Since(start)
	st := sh.Stats()
	if err != nil || !sh.PeerSynced() {
		t.Fatalf("catch-up of %d small transactions over a %v round trip (OpTimeout %v): %v after %v (synced %v, backlog left %d, shipped %d)",
			backlog, 2*oneWay, opTimeout, err, took.Round(time.Millisecond), sh.PeerSynced(), sh.Backlog(), st.Shipped)
	}
	t.Logf("caught up %d transactions over a %v round trip in %v", backlog, 2*oneWay, took.Round(time.Millisecond))
	link.SetDelay(0)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`); n != backlog {
		t.Fatalf("the peer has %d rows, want %d", n, backlog)
	}
	requireSame(t, p)
}
