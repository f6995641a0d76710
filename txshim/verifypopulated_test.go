package txshim

import (
	"slices"
	"testing"
	"time"
)

// TestVerifyUnpopulatedView: a materialized view populated on one database and not on the other
// (REFRESH … WITH NO DATA, or a schema from pg_dump --schema-only, on one side) is on both:
// verify said it "exists only on" the database where it is populated, sending an operator to look
// for a view that is there. It names what differs; two views unpopulated on both are alike.
func TestVerifyUnpopulatedView(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE items (id int PRIMARY KEY)`,
		`CREATE MATERIALIZED VIEW neither AS SELECT id FROM items WITH NO DATA`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW mv AS SELECT id FROM items WITH NO DATA`)
	p.peer.Exec(t, `CREATE MATERIALIZED VIEW mv AS SELECT id FROM items`)
	p.local.Exec(t, `CREATE MATERIALIZED VIEW lonly AS SELECT id FROM items`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"materialized view public.lonly exists only on the local database",
		"materialized view public.mv is populated on the peer database only",
	}
	if !slices.Equal(diffs, want) {
		t.Fatalf("differences %q, want %q", diffs, want)
	}
}
