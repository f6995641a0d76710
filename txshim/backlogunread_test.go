package txshim

import (
	"testing"
	"time"
)

// TestBacklogCountsUnread: a commit the shim made alone (solo mode) that the decoder has not
// read from the slot yet — a large one, still being decoded — is not on the peer. Backlog said
// 0 for it: it counted only what the decoder had read, and status (backlog, the metric) and
// the master's word peer_synced = true (sayAgain) took 0 for "the peer has every commit".
// Unshipped marks the stream and counts up to the mark.
func TestBacklogCountsUnread(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE big (id int PRIMARY KEY, pad text)`)
	conn := shim.connect(t)
	ctx := capCtx(t, 60*time.Second)
	if m, _ := shim.Mode(); m != ModeSolo {
		t.Fatalf("mode %v, want solo", m)
	}
	// One small solo commit shipped first: the decoder streams.
	if _, err := conn.Exec(ctx, `INSERT INTO big VALUES (0, 'x')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first row on the peer", func() bool { return queryOne[int](t, p.pdb, `SELECT count(*) FROM big`) == 1 })
	if _, err := conn.Exec(ctx, `INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g`); err != nil {
		t.Fatal(err)
	}
	n, err := sh.Unshipped(ctx, p.ldb)
	if err != nil {
		t.Fatalf("Unshipped: %v", err)
	}
	if peer := queryOne[int](t, p.pdb, `SELECT count(*) FROM big`); n == 0 && peer != 50001 {
		t.Fatalf("backlog 0 right after a solo commit, while the peer has %d of its 50001 rows", peer)
	}
	waitForLong(t, "the large commit shipped", 60*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM big`) == 50001
	})
}
