package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestVerifyMaterializedView: a materialized view's rows are not shipped — CREATE MATERIALIZED
// VIEW and REFRESH through the shim are, and each database computes the rows — so one over a
// query that is not immutable differs between the sites (documented); verify compares it and
// names it.
func TestVerifyMaterializedView(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	for _, stmt := range []string{
		`INSERT INTO items SELECT generate_series(1, 5)`,
		`CREATE MATERIALIZED VIEW same AS SELECT id * 2 AS d FROM items`,
		`CREATE MATERIALIZED VIEW later AS SELECT id FROM items WITH NO DATA`,
	} {
		if err := exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	shipped()
	verify := func() []string {
		t.Helper()
		diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
		if err != nil {
			t.Fatal(err)
		}
		return diffs
	}
	if diffs := verify(); len(diffs) != 0 {
		t.Fatalf("identical views (one not populated) reported: %q", diffs)
	}
	// A dual commit: on both databases at its reply (shipped() would compare them itself).
	if err := exec(`CREATE MATERIALIZED VIEW mv AS SELECT id, random() AS r FROM items`); err != nil {
		t.Fatal(err)
	}
	diffs := verify()
	if len(diffs) != 1 || !strings.Contains(diffs[0], "mv") {
		t.Fatalf("a materialized view over random() on both databases: differences %q, want mv named", diffs)
	}
}
