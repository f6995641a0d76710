package txshim

import "testing"

// TestConcurrentIndexOnTempTableNotRecorded: a temporary table's DDL does not reach the peer
// (ddlGuardSQL), but CREATE INDEX CONCURRENTLY on one, and DROP INDEX CONCURRENTLY of such an
// index, were recorded once they ran, and the peer, which has no such table, refused them:
// shipping stopped, the peer in need of resync.
func TestConcurrentIndexOnTempTableNotRecorded(t *testing.T) {
	t.Parallel()
	_, _, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	for _, q := range []string{
		`CREATE TEMP TABLE scratch (id int, note text)`,
		`CREATE INDEX CONCURRENTLY scratch_id ON scratch (id)`,
		`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS scratch_note ON pg_temp.scratch (note)`,
		`DROP INDEX CONCURRENTLY IF EXISTS scratch_id`,
		`CREATE INDEX CONCURRENTLY ON ONLY "scratch" (id, note)`,
		`DROP INDEX CONCURRENTLY pg_temp.scratch_note`,
		`INSERT INTO items VALUES (1)`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
