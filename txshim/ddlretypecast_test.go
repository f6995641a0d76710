package txshim

import (
	"strings"
	"testing"
)

// TestRetypeVolatileConversionRefused: ALTER TABLE … ALTER COLUMN … TYPE without USING
// converts the rows there with the assignment cast, on the local database and again on the
// peer when it runs the statement. A cast whose function is volatile (CREATE CAST … WITH
// FUNCTION … AS ASSIGNMENT) gave each database values of its own, and USING 'now' (a literal
// PostgreSQL turns into the moment the statement runs, a constant to the check) its own moment:
// the rows differed without an error. Refused now on a table with rows; a stable cast that
// runs under the settings recorded with the statement (timestamp to timestamptz), an immutable
// one, and either on an empty table still pass.
func TestRetypeVolatileConversionRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE boxed AS (n int, r float8)`,
		`CREATE FUNCTION box_it(int) RETURNS boxed LANGUAGE sql VOLATILE AS $$SELECT ROW($1, random())::boxed$$`,
		`CREATE CAST (int AS boxed) WITH FUNCTION box_it(int) AS ASSIGNMENT`,
		`CREATE TABLE items (id int PRIMARY KEY, v int, w int, at timestamp, d date)`,
		`INSERT INTO items SELECT g, g, g, '2020-01-01'::timestamp + g * interval '1 h', '2020-01-01' FROM generate_series(1, 3) g`,
		`CREATE TABLE empty (id int PRIMARY KEY, v int)`)
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN v TYPE boxed`,
		`ALTER TABLE items ALTER v SET DATA TYPE public.boxed, ALTER COLUMN w TYPE bigint`,
		`ALTER TABLE items ALTER COLUMN d TYPE timestamptz USING 'now'`,
		`ALTER TABLE items ALTER COLUMN d TYPE date USING 'today'::date`,
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
		`ALTER TABLE items ALTER COLUMN at TYPE timestamptz, ALTER w TYPE bigint`,
		`ALTER TABLE items ALTER COLUMN d TYPE text COLLATE "C"`,
		`ALTER TABLE empty ALTER COLUMN v TYPE boxed`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
	q := `SELECT string_agg(v::text || ' ' || d, ',' ORDER BY id) FROM items`
	if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
		t.Errorf("rows differ:\n local: %s\n peer:  %s", l, pr)
	}
}

func TestRetypeConversions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ stmt, want string }{
		{`ALTER TABLE t ALTER COLUMN v TYPE boxed`, `CAST((v) AS boxed)`},
		{`alter table only s.t alter type set data type numeric(6, 2) collate "C", alter w type int using w::int`, `CAST((type) AS numeric(6, 2))|CAST((w::int) AS int)`},
		{`ALTER TABLE t ALTER U&"\0076" TYPE timestamp with time zone USING 'now'`, `CAST(('now') AS timestamp with time zone)`},
		{`ALTER TABLE t ALTER c SET DEFAULT 'x'::type, ADD type int, ALTER d SET STATISTICS 10`, ``},
	} {
		if got := strings.Join(retypeConversions(c.stmt), "|"); got != c.want {
			t.Errorf("retypeConversions(%s) = %q, want %q", c.stmt, got, c.want)
		}
	}
}
