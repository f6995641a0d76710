package txshim

import (
	"strings"
	"testing"
)

// TestClockWordConcurrentIndexRoleWithoutTemp: the clock-literal check of CREATE INDEX
// CONCURRENTLY builds the index on a temporary table LIKE the index's, which a role without
// the TEMPORARY privilege on the database may not make: an index on a real table with the
// clock word only in a text constant was refused as one whose clock could not be told.
func TestClockWordConcurrentIndexRoleWithoutTemp(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE keeper`,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz, note text)`,
		`INSERT INTO items VALUES (1, '2020-01-01', 'a')`,
		`ALTER TABLE items OWNER TO keeper`,
		`GRANT CREATE ON SCHEMA public TO keeper`,
		`DO $$BEGIN EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database()); END$$`)
	if err := exec(`SET ROLE keeper`); err != nil {
		t.Fatal(err)
	}
	q := `CREATE INDEX CONCURRENTLY items_text ON items (id) WHERE note <> 'now'`
	if err := exec(q); err != nil {
		t.Errorf("%s: %v", q, err)
	}
	q = `CREATE INDEX CONCURRENTLY items_now ON items (id) WHERE at > 'now'`
	if err := exec(q); pgCode(err) != "0A000" || !strings.Contains(err.Error(), "reads the clock") || strings.Contains(err.Error(), "could not be told") {
		t.Errorf("%s: %v, want 0A000 (the definitions would differ)", q, err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	if err := exec(`RESET ROLE`); err != nil {
		t.Fatal(err)
	}
	shipped()
	q = `SELECT coalesce(string_agg(indexname, ',' ORDER BY indexname), '') FROM pg_indexes WHERE tablename = 'items'`
	if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != "items_pkey,items_text" || pr != l {
		t.Errorf("indexes: local %q, peer %q; want items_pkey,items_text on both", l, pr)
	}
}
