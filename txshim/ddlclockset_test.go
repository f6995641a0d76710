package txshim

import "testing"

// TestClockLiteralSetDefaultRefused: ALTER TABLE … ALTER COLUMN … SET DEFAULT 'now' and CREATE
// DOMAIN … DEFAULT 'now' (ALTER DOMAIN … SET DEFAULT 'today') fix the literal's moment into the
// default as the statement runs — PostgreSQL stores a timestamptz constant, not the text
// (pg_get_expr gives '2026-…'::timestamp with time zone) — on the local database, and again on
// the peer when it runs the statement. Neither statement adds a column or may leave a table
// keyless, so the check of clock literals never ran for them: the two databases kept
// different defaults without an error. Refused now; now(), constants and an ATTACH PARTITION
// with constant bounds still pass, and one whose bound reads the clock is refused.
func TestClockLiteralSetDefaultRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz, d date)`,
		`CREATE TABLE cp (id int, at timestamptz, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`,
		`CREATE TABLE cp_a (id int, at timestamptz, PRIMARY KEY (id, at))`,
		`CREATE TABLE cp_b (id int, at timestamptz, PRIMARY KEY (id, at))`,
		`CREATE DOMAIN stamp AS timestamptz`)
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN at SET DEFAULT 'now'`,
		`ALTER TABLE items ALTER d SET DEFAULT 'today'`,
		`CREATE DOMAIN moment AS timestamptz DEFAULT 'now'`,
		`ALTER DOMAIN stamp SET DEFAULT 'now'`,
		`ALTER TABLE cp ATTACH PARTITION cp_a FOR VALUES FROM ('-infinity') TO ('now')`,
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
		`ALTER TABLE items ALTER COLUMN at SET DEFAULT now(), ALTER d SET DEFAULT '2020-01-01'`,
		`CREATE DOMAIN later AS timestamptz DEFAULT now()`,
		`ALTER TABLE cp ATTACH PARTITION cp_b FOR VALUES FROM ('2020-01-01') TO ('2021-01-01')`,
		`COMMENT ON TABLE items IS 'see you tomorrow'`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
	for _, q := range []string{
		`SELECT coalesce(string_agg(a.attname || '=' || pg_get_expr(d.adbin, d.adrelid), ',' ORDER BY a.attname), '') FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = 'items'::regclass`,
		`SELECT coalesce(string_agg(typname || '=' || coalesce(typdefault, ''), ',' ORDER BY typname), '') FROM pg_type WHERE typtype = 'd' AND typnamespace = 'public'::regnamespace`,
		`SELECT coalesce(string_agg(c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid), ',' ORDER BY c.relname), '') FROM pg_class c WHERE c.relispartition`,
	} {
		if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
			t.Errorf("definitions differ:\n local: %s\n peer:  %s", l, pr)
		}
	}
}
