package txshim

import (
	"slices"
	"testing"
	"time"
)

// TestVerifyMaterializedViewQuery: a materialized view made by another query on each database
// (DDL that bypassed the shim) is a difference even while both hold the same rows, or none:
// its REFRESH ships, and each database computes the rows by its own query. Verify compared
// the views' columns and rows only, and called these identical.
func TestVerifyMaterializedViewQuery(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE items (id int PRIMARY KEY)`, `INSERT INTO items SELECT generate_series(1, 5)`,
		`CREATE MATERIALIZED VIEW same AS SELECT id FROM items WHERE id < 10`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW filled AS SELECT id FROM items WHERE id < 10`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW filled AS SELECT id FROM items WHERE id < 20`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW empty AS SELECT id FROM items WHERE id < 10 WITH NO DATA`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW empty AS SELECT id FROM items WHERE id < 20 WITH NO DATA`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"materialized view public.empty is made by another query on each database",
		"materialized view public.filled is made by another query on each database",
	}
	if !slices.Equal(diffs, want) {
		t.Fatalf("differences %q, want %q", diffs, want)
	}
}
