package txshim

import "testing"

// TestVerifyComments: a comment (COMMENT ON) made or changed on one database only is named;
// the same comments are not.
func TestVerifyComments(t *testing.T) {
	t.Parallel()
	const table = `CREATE TABLE t (id int PRIMARY KEY, v text)`
	cases := []verifyCase{
		{name: "table", want: []string{`comment on table public.t: 'orders' on the local database only`},
			both: []string{table}, local: []string{`COMMENT ON TABLE t IS 'orders'`}},
		{name: "column", want: []string{`comment on column v of table public.t: 'a' on the local database but 'b' on the peer`},
			both: []string{table}, local: []string{`COMMENT ON COLUMN t.v IS 'a'`}, peer: []string{`COMMENT ON COLUMN t.v IS 'b'`}},
		{name: "function", want: []string{`comment on function public.f(): 'one' on the peer database only`},
			both: []string{`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`}, peer: []string{`COMMENT ON FUNCTION f() IS 'one'`}},
		{name: "schema and type", want: []string{`comment on schema s: 's' on the local database only`, `comment on type s.d: 'd' on the peer database only`}, count: 2,
			both: []string{`CREATE SCHEMA s`, `CREATE DOMAIN s.d AS int`}, local: []string{`COMMENT ON SCHEMA s IS 's'`}, peer: []string{`COMMENT ON DOMAIN s.d IS 'd'`}},
		{name: "composite type's column", want: []string{`comment on column a of composite type public.ct: 'x' on the local database only`}, count: 1,
			both: []string{`CREATE TYPE ct AS (a int, b text)`}, local: []string{`COMMENT ON COLUMN ct.a IS 'x'`}},
		{name: "same", both: []string{table, `COMMENT ON TABLE t IS 'orders'`, `COMMENT ON COLUMN t.v IS 'value'`}},
	}
	verifyCases(t, "comment", cases)
}
