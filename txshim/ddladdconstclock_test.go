package txshim

import "testing"

// TestAddedConstantThenClockDefaultNotRefused: ADD c timestamptz DEFAULT '2020-01-01', ALTER c
// SET DEFAULT now() gives the rows there the constant on both databases, and only rows
// inserted later the clock (their row changes ship): it was refused, saying the rows there
// would get a value each database computes for itself.
func TestAddedConstantThenClockDefaultNotRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT g FROM generate_series(1, 3) g`)
	for _, q := range []string{
		`ALTER TABLE items ADD c timestamptz DEFAULT '2020-01-01', ALTER c SET DEFAULT now()`,
		`ALTER TABLE items ADD COLUMN f float8 DEFAULT 0 NOT NULL, ALTER COLUMN f SET DEFAULT random()`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM items WHERE c = '2020-01-01' AND f = 0`); got != 3 {
		t.Errorf("peer's rows with the constants: %d, want 3", got)
	}
}
