package txshim

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestKilledConcurrentIndexVerify: a CREATE INDEX CONCURRENTLY through the shim whose backend
// is killed once it has made its index (waiting for the writers before its build) leaves that
// index, invalid, on the local database alone: the shim's session is gone with its backend, so
// nothing drops it (as it does a failed one's) and nothing is recorded for the peer. Verify
// must name that leftover, not call the databases identical.
func TestKilledConcurrentIndexVerify(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`, `INSERT INTO items VALUES (1, 'a')`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	// A writer on the table, so that the CREATE INDEX CONCURRENTLY waits after it made its index.
	tx, err := p.ldb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE items SET v = v WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	conn := shim.connect(t)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, `CREATE INDEX CONCURRENTLY items_v ON items (v)`, pgx.QueryExecModeSimpleProtocol)
		done <- err
	}()
	waitFor(t, "the CREATE INDEX CONCURRENTLY to wait for the writer", func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX CONCURRENTLY%'`) == 1
	})
	if queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('items_v') AND NOT indisvalid`) != 1 {
		t.Fatal("no invalid index items_v while the CREATE INDEX CONCURRENTLY waits")
	}
	if _, err := p.ldb.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX CONCURRENTLY%'`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the CREATE INDEX CONCURRENTLY whose backend was killed succeeded")
	}
	_ = tx.Rollback()
	waitFor(t, "the peer to have every commit", func() bool { return sh.Backlog() == 0 })
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_class WHERE oid = to_regclass('items_v')`); n != 0 {
		t.Fatalf("the peer has items_v (%d)", n)
	}
	diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(diffs, "\n"), "items_v") {
		t.Errorf("verify with an invalid index items_v on the local database only: %q; want it named", diffs)
	}
}
