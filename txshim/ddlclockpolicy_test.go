package txshim

import "testing"

// TestClockLiteralPolicyTriggerBodyRefused: a clock literal in a policy's expression, a
// trigger's WHEN condition or a function's SQL-standard body (BEGIN ATOMIC) is turned into a
// constant as the statement runs, as in a view (TestClockLiteralViewRefused): each database kept
// its own moment, and the statements passed. Refused now; the same words in text, a constant
// date and now() still pass.
func TestClockLiteralPolicyTriggerBodyRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz, note text)`,
		`CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$`)
	for _, q := range []string{
		`CREATE POLICY p_now ON items USING (at > 'now')`,
		`CREATE POLICY p_chk ON items FOR INSERT WITH CHECK (at < 'tomorrow')`,
		`CREATE TRIGGER t_now BEFORE UPDATE ON items FOR EACH ROW WHEN (new.at > 'now') EXECUTE FUNCTION trg()`,
		`CREATE FUNCTION f_now() RETURNS boolean LANGUAGE sql BEGIN ATOMIC SELECT now() > 'today'::timestamptz; END`,
		`CREATE FUNCTION f_ret(x timestamptz) RETURNS boolean LANGUAGE sql RETURN x > 'yesterday'`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the definitions would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`CREATE POLICY p_ok ON items USING (at > '2020-01-01' AND note <> 'now' AND at < now())`,
		`CREATE TRIGGER t_ok BEFORE UPDATE ON items FOR EACH ROW WHEN (new.note <> 'today') EXECUTE FUNCTION trg()`,
		`CREATE FUNCTION f_ok() RETURNS boolean LANGUAGE sql BEGIN ATOMIC SELECT now() > '2020-01-01'::timestamptz AND 'now' <> ''; END`,
		`CREATE FUNCTION f_plain() RETURNS timestamptz LANGUAGE sql AS $$SELECT 'now'::timestamptz$$`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
}

// TestClockLiteralFunctionDefaultRefused: a function's argument default is parsed as the
// statement runs, whatever the language of its body: DEFAULT 'now' kept each database's own
// moment in pg_proc.proargdefaults, and the function was defined otherwise on each. Refused now;
// a constant date and now() still pass.
func TestClockLiteralFunctionDefaultRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY, at timestamptz, note text)`)
	for _, q := range []string{
		`CREATE FUNCTION f_def(at timestamptz DEFAULT 'now') RETURNS timestamptz LANGUAGE sql RETURN at`,
		`CREATE FUNCTION f_pl(d date DEFAULT 'today', n text DEFAULT 'x') RETURNS date LANGUAGE plpgsql AS $$BEGIN RETURN d; END$$`,
		`CREATE PROCEDURE p_def(at timestamptz = 'tomorrow') LANGUAGE sql AS $$SELECT 1$$`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the definitions would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`CREATE FUNCTION f_ok(at timestamptz DEFAULT '2020-01-01', n text DEFAULT 'now', b timestamptz DEFAULT now()) RETURNS timestamptz LANGUAGE plpgsql AS $$BEGIN RETURN 'now'::timestamptz; END$$`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
}
