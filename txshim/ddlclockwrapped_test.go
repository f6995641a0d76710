package txshim

import "testing"

// TestAddedColumnClockLiteralWrapped: ALTER TABLE … ADD COLUMN with a default whose literal
// reads the clock inside an array, a range or a domain over one ('{now}'::timestamptz[],
// '[today,infinity)'::daterange) went through on a table with rows: PostgreSQL turns the
// literal into a constant as the statement runs, each database its own moment, and the check
// looked for a constant of a date or time type itself only. The rows there differed without an
// error. Refused now, as a bare 'now' is; such literals of types that hold no date or time
// still pass.
func TestAddedColumnClockLiteralWrapped(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE DOMAIN stamps AS timestamptz[]`,
		`CREATE TYPE slot AS (at timestamptz, note text)`,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT generate_series(1, 3)`)
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN at timestamptz[] DEFAULT '{now}'`,
		`ALTER TABLE items ADD COLUMN span tstzrange DEFAULT '[now,infinity)'`,
		`ALTER TABLE items ADD COLUMN days daterange DEFAULT '[today,)'`,
		`ALTER TABLE items ADD COLUMN s stamps DEFAULT '{now,tomorrow}'`,
		`ALTER TABLE items ADD COLUMN sl slot DEFAULT '(now,x)'`,
		`ALTER TABLE items ADD COLUMN many tstzmultirange DEFAULT '{[yesterday,now)}'`,
	} {
		err := exec(q)
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN words text[] DEFAULT '{now,today}'`,
		`ALTER TABLE items ADD COLUMN fixed tstzrange DEFAULT '[2020-01-01,infinity)'`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(DISTINCT words::text || fixed::text, ',') FROM items`); got != `{now,today}["2020-01-01 00:00:00+00",infinity)` {
		t.Errorf("peer's rows: %s", got)
	}
}
