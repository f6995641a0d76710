package txshim

import "testing"

// TestAddedColumnConstantThenDefaultSet: 04795bc refuses, on a table with rows, a column added
// and given another default in the same statement, since the rows there get the default it is
// added with. One added with a constant written out — ADD c int DEFAULT 5, ALTER c SET
// DEFAULT 0 — gives them that constant on both databases, and was refused (0A000) all the
// same. A default that reads the clock ('now') or is not a constant still is.
func TestAddedColumnConstantThenDefaultSet(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT g FROM generate_series(1, 3) g`)
	for _, q := range []string{
		`ALTER TABLE items ADD c int DEFAULT 5, ALTER c SET DEFAULT 0`,
		`ALTER TABLE items ADD COLUMN IF NOT EXISTS "N" numeric(6, 2) DEFAULT -1.5::numeric NOT NULL, ALTER COLUMN "N" SET DEFAULT NULL`,
		`ALTER TABLE items ADD COLUMN s text DEFAULT 'x' CHECK (s <> ''), ALTER s SET DEFAULT 'y'`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN at timestamptz DEFAULT 'now', ALTER COLUMN at SET DEFAULT '2020-01-01'`,
		`ALTER TABLE items ADD COLUMN f float8 DEFAULT 1 + random(), ALTER COLUMN f SET DEFAULT 0`,
		`ALTER TABLE items ADD COLUMN g float8 DEFAULT (random()), ALTER COLUMN g SET DEFAULT 0`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM items WHERE c = 5 AND "N" = -1.5 AND s = 'x'`); got != 3 {
		t.Errorf("peer's rows with c = 5, N = -1.5, s = 'x': %d, want 3", got)
	}
}
