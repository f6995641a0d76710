package txshim

import (
	"strings"
	"testing"
)

// TestClockLiteralConcurrentIndexRefused: CREATE INDEX CONCURRENTLY runs outside a transaction
// block and is recorded once it ran, so the clock-literal check of the index's predicate
// (TestClockLiteralCheckAndIndexRefused) never ran for it: WHERE at > 'now' left each database
// its own moment in the index. Refused now, with no index left behind; the same words in a
// text constant still pass.
func TestClockLiteralConcurrentIndexRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz, note text)`,
		`INSERT INTO items VALUES (1, '2020-01-01', 'a')`)
	for _, q := range []string{
		`CREATE INDEX CONCURRENTLY items_now ON items (id) WHERE at > 'now'`,
		`CREATE INDEX CONCURRENTLY ON items ((at > 'today'))`,
	} {
		if err := exec(q); pgCode(err) != "0A000" || !strings.Contains(err.Error(), "reads the clock") || strings.Contains(err.Error(), "could not be told") {
			t.Errorf("%s: %v, want 0A000 (the definitions would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`CREATE INDEX CONCURRENTLY items_text ON items (id) WHERE note <> 'now' AND at > '2020-01-01'`,
		`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_u ON ONLY public.items USING btree (id, (note <> 'today'))`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
	q := `SELECT coalesce(string_agg(indexdef, ',' ORDER BY indexname), '') FROM pg_indexes WHERE schemaname = 'public'`
	if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
		t.Errorf("index definitions differ:\n local: %s\n peer:  %s", l, pr)
	}
}

// TestClockLiteralConcurrentIndexTempTableNotRefused: a temporary table's DDL does not reach
// the peer, so a clock literal's moment in its index is no one else's: CREATE INDEX … WHERE at >
// 'now' on one passed, CREATE INDEX CONCURRENTLY of the same was refused.
func TestClockLiteralConcurrentIndexTempTableNotRefused(t *testing.T) {
	t.Parallel()
	_, _, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	for _, q := range []string{
		`CREATE TEMP TABLE scratch (id int, at timestamptz)`,
		`CREATE INDEX ON scratch (id) WHERE at > 'now'`,
		`CREATE INDEX CONCURRENTLY ON scratch (at) WHERE at > 'today'`,
		`INSERT INTO items VALUES (1)`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
