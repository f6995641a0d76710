package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestResolveReportsWhatItDidOnError: a resolver pass that fails on one gid still settles the
// others, and its report holds what it did (txshim.Resolver.ResolveOnce). tandem resolve printed
// only the failure then, so an operator never learned that it had committed or rolled back
// transactions, nor which were left in doubt.
func TestResolveReportsWhatItDidOnError(t *testing.T) {
	c := pgtest.Start(t)
	dsn := c.DSN(c.Database())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := createPeerDB(ctx, t, dsn) // the peer database has no tandem schema: reading a decision row there fails
	// site1's gid (the other site: its own database is the peer's, where its xid committed),
	// prepared on the local database: the pass commits it.
	var xid string
	if err := db.QueryRowContext(ctx, `SELECT txid_current()::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	other := "tandem_site1_1_" + xid
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN; CREATE TABLE applied (id int); PREPARE TRANSACTION '`+other+`'`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	t.Cleanup(func() { db.ExecContext(context.Background(), `ROLLBACK PREPARED '`+other+`'`) })
	// This site's gid: the pass fails reading its decision row on the peer.
	own := prepareSiteGID(ctx, t, db, "failing")
	resolve := resolveSiteTimeout(t, dsn, c.DSN("peer"), "1s")
	const settle = 2 * time.Second // rather than its 38 s: what it takes for in flight does not matter here
	defer func(f func(time.Duration) time.Duration) { resolveSettle = f }(resolveSettle)
	resolveSettle = func(time.Duration) time.Duration { return settle }
	time.Sleep(settle + time.Second) // past the pass's settle
	code, out := resolve()
	if code != 1 || !strings.Contains(out, own) {
		t.Fatalf("exit %d, output %q; want exit 1 naming the failure on %s", code, out, own)
	}
	if !strings.Contains(out, "committed: "+other) {
		t.Errorf("output %q does not say that %s was committed", out, other)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_class WHERE relname = 'applied'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%s committed %d times (%v), want once", other, n, err)
	}
}
