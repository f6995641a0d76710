package txshim

import "testing"

// TestAddedColumnConstantCastVolatile: writtenConstant took any value cast with :: for a
// constant written out, so ADD b boxed DEFAULT 5::boxed, ALTER b SET DEFAULT NULL passed on a
// table with rows: the cast is a user's (CREATE CAST … WITH FUNCTION, volatile), and each
// database gave the rows there its own values, with the default left (NULL) showing nothing
// of it. A cast of a number (or of a cast) counts as written out only to a built-in type now;
// of a string or NULL, which the type's input makes a constant of, to any.
func TestAddedColumnConstantCastVolatile(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE boxed AS (n int, r float8)`,
		`CREATE FUNCTION box_it(int) RETURNS boxed LANGUAGE sql VOLATILE AS $$SELECT ROW($1, random())::boxed$$`,
		`CREATE CAST (int AS boxed) WITH FUNCTION box_it(int) AS ASSIGNMENT`,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT g FROM generate_series(1, 3) g`)
	for _, q := range []string{
		`ALTER TABLE items ADD b boxed DEFAULT 5::boxed, ALTER b SET DEFAULT NULL`,
		`ALTER TABLE items ADD b2 boxed DEFAULT '5'::int::public.boxed, ALTER b2 SET DEFAULT NULL`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD c boxed DEFAULT '(5,0.5)'::boxed, ALTER c SET DEFAULT NULL`,
		`ALTER TABLE items ADD d bigint DEFAULT 5::pg_catalog.int8, ALTER d SET DEFAULT 0`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
}
