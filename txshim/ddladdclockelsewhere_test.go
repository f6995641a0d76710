package txshim

import "testing"

// TestAddedColumnClockWordElsewhereNotRefused: on a table with rows, ADD COLUMN with a default
// holding any date or time constant was refused (0A000) once the statement had a clock word in
// any string — ADD COLUMN d date DEFAULT '2020-01-01', ADD COLUMN note text DEFAULT 'today' —
// and 4171b94 widened that to arrays, ranges and composites of them. Only a constant holding
// the moment a clock word was read gives the rows values the peer computes for itself.
func TestAddedColumnClockWordElsewhereNotRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT g FROM generate_series(1, 3) g`)
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN d date DEFAULT '2020-01-01', ADD COLUMN note text DEFAULT 'today'`,
		`ALTER TABLE items ADD COLUMN span daterange DEFAULT '[2020-01-01,2021-01-01)', ADD CONSTRAINT n CHECK (note <> 'now')`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN at timestamptz DEFAULT 'now'`,
		`ALTER TABLE items ADD COLUMN w date[] DEFAULT '{2020-01-01,tomorrow}'`,
		`ALTER TABLE items ADD COLUMN v text DEFAULT 'now'::text::timestamptz`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(DISTINCT d::text, ',') FROM items`); got != "2020-01-01" {
		t.Errorf("peer's rows: %s", got)
	}
}
