package txshim

import "testing"

// TestClockLiteralDefinitionsRefused: a date or time literal that reads the clock ('now',
// 'today', …) in a column's default or a partition's bounds is fixed as the statement runs —
// on the local database, and again on the peer when it runs the statement, at another moment:
// CREATE TABLE … (at timestamptz DEFAULT 'now') and … PARTITION OF … FOR VALUES FROM ('now')
// left the two databases' definitions different without an error (verify named them; a row
// between the two bounds would be refused by the peer's partition). Refused now; now() and
// constants still pass.
func TestClockLiteralDefinitionsRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE cp (id int, at timestamptz, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`)
	for _, q := range []string{
		`CREATE TABLE d1 (id int PRIMARY KEY, at timestamptz DEFAULT 'now')`,
		`CREATE TABLE d2 (id int PRIMARY KEY, days daterange DEFAULT '[today,)')`,
		`CREATE TABLE cp_old PARTITION OF cp FOR VALUES FROM ('-infinity') TO ('now')`,
		`CREATE TABLE e1 (id int PRIMARY KEY)`, // empty: ADD of such a default changes no row, but the definition
		`ALTER TABLE e1 ADD COLUMN at timestamptz DEFAULT 'now'`,
	} {
		err := exec(q)
		if q == `CREATE TABLE e1 (id int PRIMARY KEY)` {
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the definitions would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`CREATE TABLE d3 (id int PRIMARY KEY, at timestamptz DEFAULT now(), d date DEFAULT CURRENT_DATE, note text DEFAULT 'see you tomorrow')`,
		`CREATE TABLE cp_2020 PARTITION OF cp FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')`,
		`ALTER TABLE e1 ADD COLUMN at timestamptz DEFAULT 'now'::text::timestamptz`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
}
