package txshim

import (
	"testing"
	"time"
)

// TestResyncMaterializedViews: a materialized view's rows are not shipped — its CREATE and
// REFRESH are, and each database computes them (TestVerifyMaterializedView) — so after a resync
// the peer's views must be computed over the copied tables, as the local database's are over
// its own. Resync copied the tables alone: a view the peer never populated (a peer whose schema
// came from pg_dump --schema-only: WITH NO DATA) stayed so, and one computed over the peer's
// old rows kept them. The peer was called synced; verify named both; after a failover the new
// master served the old rows, or refused every read of the unpopulated view.
func TestResyncMaterializedViews(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE items (id int PRIMARY KEY)`, `CREATE TABLE empty (id int PRIMARY KEY)`,
		// Computed while items is empty; over the copied rows its query fails: left as it is on
		// the peer, the copy goes on.
		`CREATE MATERIALIZED VIEW bad AS SELECT 1 / (id - 3) AS q FROM items`)
	p.local.Exec(t, `INSERT INTO items SELECT generate_series(1, 5)`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n, sum(id) AS s FROM items`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW doubled AS SELECT id * 2 AS d FROM items`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW later AS SELECT id FROM items WITH NO DATA`)
	// On top of another view: computed after it.
	p.local.Exec(t, `CREATE MATERIALIZED VIEW a_total AS SELECT n + 1 AS m FROM total`)
	// The peer: no rows, one view over them computed (0 rows), the others never populated — and
	// the view the local database left unpopulated computed.
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n, sum(id) AS s FROM items`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW doubled AS SELECT id * 2 AS d FROM items WITH NO DATA`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW later AS SELECT id FROM items`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW a_total AS SELECT n + 1 AS m FROM total WITH NO DATA`)
	sh := syncedShipper(t, p)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)
	if populated := queryOne[bool](t, p.pdb, `SELECT relispopulated FROM pg_class WHERE oid = 'later'::regclass`); populated {
		t.Error("the peer's view later is populated after resync; the local one is not")
	}
}
