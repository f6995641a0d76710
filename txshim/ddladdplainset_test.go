package txshim

import "testing"

// TestAddedColumnPlainThenDefaultSet: 04795bc refuses, on a table with rows, a column added and
// given another default in the same statement, since the rows there get the default it is
// added with. A column added with none — ADD COLUMN c int, ALTER COLUMN c SET DEFAULT 5 — gives
// them NULL on both databases, and was refused (0A000) all the same. One of a domain type with
// a default, or a serial one, still is.
func TestAddedColumnPlainThenDefaultSet(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT g FROM generate_series(1, 3) g`,
		`CREATE DOMAIN rnd AS float8 DEFAULT random()`)
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN c int, ALTER COLUMN c SET DEFAULT 5`,
		`ALTER TABLE items ADD IF NOT EXISTS "E" text CHECK ("E" <> ''), ADD CONSTRAINT k CHECK (id > 0), ALTER "E" SET DEFAULT 'x'`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN r rnd, ALTER COLUMN r SET DEFAULT 0`,
		`ALTER TABLE items ADD COLUMN s serial, ALTER COLUMN s SET DEFAULT 0`,
		`ALTER TABLE items ADD COLUMN f float8 DEFAULT random(), ALTER COLUMN f SET DEFAULT 0`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM items WHERE c IS NULL AND "E" IS NULL`); got != 3 {
		t.Errorf("peer's rows with c and E NULL: %d, want 3", got)
	}
}
