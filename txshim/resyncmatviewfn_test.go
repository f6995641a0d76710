package txshim

import (
	"testing"
	"time"
)

// TestResyncMaterializedViewThroughFunction: resync computes the peer's materialized views
// over the copied tables, each after those it reads (resyncViews) — as pg_depend tells them,
// from a view's query to the relations it names. A view that reads another through a function
// names none: it was computed first (by name) over the other's old rows on the peer, with no
// error and nothing logged, and the peer held different rows from the local database's.
func TestResyncMaterializedViewThroughFunction(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE items (id int PRIMARY KEY)`,
		`CREATE MATERIALIZED VIEW z_base AS SELECT id FROM items`,
		`CREATE FUNCTION base_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM public.z_base'`,
		`CREATE MATERIALIZED VIEW a_top AS SELECT base_count() AS n`)
	p.local.Exec(t, `INSERT INTO items SELECT generate_series(1, 5)`)
	p.local.Exec(t, `REFRESH MATERIALIZED VIEW z_base`)
	p.local.Exec(t, `REFRESH MATERIALIZED VIEW a_top`)
	sh := syncedShipper(t, p)
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)
}
