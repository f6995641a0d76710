package txshim

import (
	"slices"
	"testing"
	"time"
)

// TestVerifyUnpopulatedViewColumns: a materialized view unpopulated on both databases (WITH NO
// DATA, a schema from pg_dump --schema-only) has no rows to compare, but its columns are still
// compared, as a populated one's are: verify called two such views identical whose columns or
// their types differ (made differently on each side), which their first REFRESH through the
// shim fills with different rows.
func TestVerifyUnpopulatedViewColumns(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE items (id int PRIMARY KEY, name text)`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW cols AS SELECT id FROM items WITH NO DATA`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW cols AS SELECT id, name FROM items WITH NO DATA`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW types AS SELECT id FROM items WITH NO DATA`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW types AS SELECT id::bigint AS id FROM items WITH NO DATA`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"materialized view public.cols has columns (id) on the local database but (id, name) on the peer",
		"column public.types.id is integer on the local database but bigint on the peer",
	}
	if !slices.Equal(diffs, want) {
		t.Fatalf("differences %q, want %q", diffs, want)
	}
}
