package txshim

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// orderPair starts two clusters with schema run on both, installs Tandem on them with site1
// master of term 1, and runs a Shipper from the first to the second until the test ends.
func orderPair(t *testing.T, schema ...string) (local, peerDB *pgtest.Cluster, sh *Shipper, logger *slog.Logger) {
	t.Helper()
	local, peerDB = testCluster(t), testCluster(t)
	for _, c := range []*pgtest.Cluster{local, peerDB} {
		for _, q := range schema {
			c.Exec(t, q)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := Install(ctx, "site1", local.DSN(local.Database()), peerDB.DSN(peerDB.Database()), logger); err != nil {
		cancel()
		t.Fatal(err)
	}
	for _, c := range []*pgtest.Cluster{local, peerDB} {
		if err := WriteTermRecord(ctx, c.Open(t, c.Database()), 1, "site1", true); err != nil {
			cancel()
			t.Fatal(err)
		}
	}
	sh = NewShipper(ShipperConfig{Site: "site1", LocalDSN: local.DSN(local.Database()), PeerDSN: peerDB.DSN(peerDB.Database()), Logger: logger})
	sh.SetTerm(1)
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return local, peerDB, sh, logger
}

// TestDualOrderInsertThenDelete: a row inserted by one transaction and
// deleted by the next must be applied on the peer in that order. The first's
// COMMIT PREPARED on the peer completes after the client's reply (DESIGN
// §5.3), so the second's apply must not run before it, or its DELETE would
// not see the row there and be taken for divergence.
func TestDualOrderInsertThenDelete(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("two clusters")
	}
	ctx := context.Background()
	local, _, sh, logger := orderPair(t, `CREATE TABLE kv (k int PRIMARY KEY, v text NOT NULL)`)
	s := startShim(t, local, Options{Peer: sh, Logger: logger}, ModeDual, 1)
	conn := s.connect(t)
	for i := 0; i < 200; i++ {
		if _, err := conn.Exec(ctx, `INSERT INTO kv VALUES ($1, 'a')`, i); err != nil {
			t.Fatalf("insert %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, `UPDATE kv SET v = 'b' WHERE k = $1`, i); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		if _, err := conn.Exec(ctx, `DELETE FROM kv WHERE k = $1`, i); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
	}
	if st := s.Stats(); st.PeerErrors != 0 || st.CommitsDual != 600 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDualOrderMovedIdentityRow: an UPDATE of a GENERATED ALWAYS identity column outside the
// replica identity moves the row on the peer (deleted, inserted again with OVERRIDING SYSTEM
// VALUE: updateSQL), though it stays in place locally. The next transaction's update of that row
// must wait for its COMMIT PREPARED on the peer, as after an insert: run while it is only
// prepared there, its UPDATE waits for the row, finds it deleted, and does not see the new one.
func TestDualOrderMovedIdentityRow(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("two clusters")
	}
	ctx := context.Background()
	local, peerDB, sh, logger := orderPair(t, `CREATE TABLE mv (k int PRIMARY KEY, v text, u int GENERATED ALWAYS AS IDENTITY)`,
		`INSERT INTO mv (k, v) VALUES (1, 'a')`)
	// Every peer COMMIT PREPARED comes 300 ms late: the next transaction is applied meanwhile.
	sh.hooks.peerOp.set(func(string, bool) { time.Sleep(300 * time.Millisecond) })
	s := startShim(t, local, Options{Peer: sh, Logger: logger}, ModeDual, 1)
	conn := s.connect(t)
	for i, q := range []string{
		`UPDATE mv SET u = DEFAULT WHERE k = 1`,
		`UPDATE mv SET v = 'b' WHERE k = 1`,
		`UPDATE mv SET u = DEFAULT, v = 'c' WHERE k = 1`,
		`UPDATE mv SET u = DEFAULT WHERE k = 1`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("statement %d (%s): %v", i, q, err)
		}
	}
	if st := s.Stats(); st.PeerErrors != 0 || st.CommitsDual != 4 {
		t.Fatalf("stats %+v", st)
	}
	rows := func(c *pgtest.Cluster) string {
		var r string
		if err := c.Open(t, c.Database()).QueryRow(`SELECT string_agg(format('%s,%s,%s', k, v, u), ' ' ORDER BY k) FROM mv`).Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	want := rows(local)
	deadline := time.Now().Add(10 * time.Second)
	for got := rows(peerDB); got != want; got = rows(peerDB) {
		if time.Now().After(deadline) {
			t.Fatalf("peer has %s, local %s", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDualOrderAfterStreamShippedPrepared: a prepared transaction committed on the local
// database without a peer prepare (left in doubt by a commit that lost the peer, and committed
// by the resolver or an operator once the peer was back) is shipped from the stream, as a plain
// commit is. A dual commit after it that updates a row it updated in place must wait until it is
// on the peer, as after a plain commit: the row lock that orders the two when the first is
// prepared on the peer does not exist while it is still to be applied there. Applied first, the
// dual commit's update was overwritten by the older one's, and the peer kept the old value.
func TestDualOrderAfterStreamShippedPrepared(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'a'), (2, 'a')`)
	installPair(t, p)
	s := startShipper(t, p)
	ctx := capCtx(t, 30*time.Second)
	// A session on the peer holds row 2 for about a second (until the apply's watchdog ends
	// it): the older transaction's apply, which updates row 2 first, is still under way there
	// meanwhile.
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"BEGIN", "SELECT * FROM kv WHERE k = 2 FOR UPDATE"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	older := gidFor("a", 1, 1)
	prepareLocal(t, p.ldb, older, `UPDATE kv SET v = 'older' WHERE k = 2`, `UPDATE kv SET v = 'older' WHERE k = 1`)
	p.local.Exec(t, "COMMIT PREPARED "+sqlLiteral(older)) // never prepared on the peer
	waitFor(t, "the older transaction's apply blocked on the peer", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`) > 0
	})
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE kv SET v = 'newer' WHERE k = 1`)
	waitFor(t, "both on the peer", func() bool { return s.Backlog() == 0 })
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if v := queryOne[string](t, p.pdb, `SELECT v FROM kv WHERE k = 1`); v != "newer" {
		t.Errorf("row 1 on the peer is %q, on the local database %q", v, queryOne[string](t, p.ldb, `SELECT v FROM kv WHERE k = 1`))
	}
	requireSame(t, p)
}
