package txshim

import "testing"

// TestRetypeUsingOwnerWithoutCreate: ALTER COLUMN … TYPE … USING random() by a table's owner
// that may not create objects in the table's schema (PostgreSQL 15's public schema grants
// CREATE to no one) went through on a table with rows: the check has PostgreSQL judge the
// expression by asking for an index on it, which that role may not make (42501), taken for an
// expression PostgreSQL found immutable. The rows there differed without an error. The
// expression is judged as a generated column's then, which the owner may add.
func TestRetypeUsingOwnerWithoutCreate(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE keeper`,
		`CREATE TABLE vault (id int PRIMARY KEY, v float8, w int)`,
		`INSERT INTO vault SELECT g, g, g FROM generate_series(1, 3) g`,
		`ALTER TABLE vault OWNER TO keeper`)
	if err := exec(`SET ROLE keeper`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE vault ALTER COLUMN v TYPE float8 USING random()`,
		`ALTER TABLE vault ALTER COLUMN v TYPE timestamptz USING now() + v * interval '1 s'`,
	} {
		err := exec(q)
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	if err := exec(`ALTER TABLE vault ALTER COLUMN w TYPE bigint USING w * 10`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`RESET ROLE`); err != nil {
		t.Fatal(err)
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(w::text, ',' ORDER BY id) FROM vault`); got != "10,20,30" {
		t.Errorf("peer's rows: %s", got)
	}
}
