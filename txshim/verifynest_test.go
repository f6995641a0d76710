package txshim

import (
	"fmt"
	"testing"
	"time"
)

// TestVerifySavepointsDoNotNest: a verification runs the schema read and each table's
// comparison in a savepoint rolled back after it (unlocking). ROLLBACK TO SAVEPOINT keeps the
// savepoint, so the next SAVEPOINT of the same name opened one more level inside it: a
// verification of n tables left n+1 nested subtransactions open on each database, each with its
// memory (a CurTransactionContext, a resource owner) until the end — growing with the number of
// tables, after every catch-up too.
func TestVerifySavepointsDoNotNest(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	var stmts []string
	for i := range 20 {
		stmts = append(stmts, fmt.Sprintf(`CREATE TABLE t%02d (id int PRIMARY KEY)`, i), fmt.Sprintf(`INSERT INTO t%02d VALUES (1)`, i))
	}
	p.both(t, stmts...)
	ctx := capCtx(t, 60*time.Second)
	snaps, err := beginVerify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.close()
	diffs, err := snaps.compare(ctx)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("compare = %q, %v; want identical", diffs, err)
	}
	for i, tx := range snaps.txs {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pg_catalog.pg_backend_memory_contexts WHERE name = 'CurTransactionContext'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 1 {
			t.Errorf("%s database: %d transaction levels open after comparing 20 tables; want 1 (the savepoints nest)", sideName(i), n)
		}
	}
}
