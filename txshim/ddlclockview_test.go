package txshim

import "testing"

// TestClockLiteralViewRefused: a date or time literal that reads the clock in a view's query
// (WHERE at > 'now') is turned into a constant as CREATE VIEW runs, each database's own
// moment: the views' definitions (pg_get_viewdef) differed, and the statement passed. Refused
// now, for a materialized view and a rule too; the same words in a text constant, a constant
// date and now() still pass.
func TestClockLiteralViewRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz, note text)`,
		`INSERT INTO items VALUES (1, '2020-01-01', 'a')`)
	for _, q := range []string{
		`CREATE VIEW v_now AS SELECT * FROM items WHERE at > 'now'`,
		`CREATE MATERIALIZED VIEW mv_today AS SELECT * FROM items WHERE at > 'today'`,
		`CREATE VIEW v_ok AS SELECT id FROM items; CREATE OR REPLACE VIEW v_ok AS SELECT id FROM items WHERE at < 'tomorrow'`,
		`CREATE RULE r_now AS ON UPDATE TO items WHERE new.at > 'now' DO INSTEAD NOTHING`,
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
		`CREATE VIEW v_text AS SELECT * FROM items WHERE note <> 'now' AND at > '2020-01-01'`,
		`CREATE VIEW v_fn AS SELECT * FROM items WHERE at > now() AND note <> 'today'`,
		`CREATE MATERIALIZED VIEW mv_text AS SELECT * FROM items WHERE note <> 'today'`,
		`BEGIN; CREATE VIEW v_2020 AS SELECT * FROM items WHERE at > '2020-01-01'; CREATE TABLE t_now (id int PRIMARY KEY, s text DEFAULT 'now'); COMMIT`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
	q := `SELECT coalesce(string_agg(c.relname || ' ' || pg_get_viewdef(c.oid), ',' ORDER BY c.relname), '') FROM pg_class c WHERE c.relkind IN ('v', 'm') AND c.relnamespace = 'public'::regnamespace`
	if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
		t.Errorf("view definitions differ:\n local: %s\n peer:  %s", l, pr)
	}
}
