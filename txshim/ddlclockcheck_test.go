package txshim

import "testing"

// TestClockLiteralCheckAndIndexRefused: a date or time literal that reads the clock ('now',
// 'today', …) in a CHECK constraint or an index's predicate is fixed as the statement runs,
// as in a default (TestClockLiteralDefinitionsRefused): CHECK (at > 'now') and CREATE INDEX …
// WHERE at > 'today' left each database its own moment in the definition without an error (a
// row the local database took could be refused by the peer's constraint). Refused now; the
// same words in a text constant, and constant dates, still pass.
func TestClockLiteralCheckAndIndexRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz, note text)`)
	for _, q := range []string{
		`CREATE TABLE c1 (id int PRIMARY KEY, at timestamptz CHECK (at > 'now'))`,
		`ALTER TABLE items ADD CONSTRAINT recent CHECK (at < 'tomorrow') NOT VALID`,
		`CREATE INDEX items_today ON items (id) WHERE at > 'today'`,
	} {
		err := exec(q)
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the definitions would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD CONSTRAINT not_now CHECK (note <> 'now')`,
		`CREATE INDEX items_2020 ON items (id) WHERE at > '2020-01-01' AND note <> 'today'`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
	for _, q := range []string{
		`SELECT coalesce(string_agg(conname || ' ' || pg_get_constraintdef(oid), ',' ORDER BY conname), '') FROM pg_constraint WHERE contype = 'c'`,
		`SELECT coalesce(string_agg(indexdef, ',' ORDER BY indexname), '') FROM pg_indexes WHERE schemaname = 'public'`,
	} {
		if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
			t.Errorf("definitions differ:\n local: %s\n peer:  %s", l, pr)
		}
	}
}
