package txshim

import "testing"

// TestConcurrentIndexTempLookupFailed: whether the table of a CREATE INDEX CONCURRENTLY is
// temporary is asked before it runs; when the question failed (a role that may not read
// pg_class, on a database that keeps it from PUBLIC), the index on a temporary table was
// recorded all the same, and the peer, which has no such table, refused it: shipping stopped.
// The statement is refused before it runs now.
func TestConcurrentIndexTempLookupFailed(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE keeper`,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`REVOKE SELECT ON pg_catalog.pg_class FROM PUBLIC`)
	for _, q := range []string{`SET ROLE keeper`, `CREATE TEMP TABLE scratch (id int)`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	q := `CREATE INDEX CONCURRENTLY scratch_id ON scratch (id)`
	if err := exec(q); pgCode(err) != "0A000" {
		t.Errorf("%s: %v, want 0A000 (whether its table is temporary could not be told)", q, err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	for _, q := range []string{`RESET ROLE`, `INSERT INTO items VALUES (1)`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
