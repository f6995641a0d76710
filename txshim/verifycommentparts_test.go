package txshim

import "testing"

// TestVerifyCommentsOnTableParts: a comment made on one database only on a constraint, an
// index, a trigger, a policy or a rule was not named (verify read the comments of tables,
// columns, functions, types and schemas only). Each is named; the same comments are not.
func TestVerifyCommentsOnTableParts(t *testing.T) {
	t.Parallel()
	const table = `CREATE TABLE t (id int PRIMARY KEY, v text CONSTRAINT v_short CHECK (length(v) < 10))`
	cases := []verifyCase{
		{name: "constraint", want: []string{`comment on constraint v_short on table public.t: 'short' on the local database only`}, count: 1,
			both: []string{table}, local: []string{`COMMENT ON CONSTRAINT v_short ON t IS 'short'`}},
		{name: "index", want: []string{`comment on index public.t_v: 'a' on the local database but 'b' on the peer`}, count: 1,
			both: []string{table, `CREATE INDEX t_v ON t (v)`}, local: []string{`COMMENT ON INDEX t_v IS 'a'`}, peer: []string{`COMMENT ON INDEX t_v IS 'b'`}},
		{name: "trigger and policy", want: []string{`comment on trigger tr on table public.t: 'tr' on the peer database only`, `comment on policy p on table public.t: 'p' on the peer database only`}, count: 2,
			both: []string{table, `CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'`,
				`CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`, `CREATE POLICY p ON t USING (true)`},
			peer: []string{`COMMENT ON TRIGGER tr ON t IS 'tr'`, `COMMENT ON POLICY p ON t IS 'p'`}},
		{name: "rule", want: []string{`comment on rule r on table public.t: 'r' on the local database only`}, count: 1,
			both: []string{table, `CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING`}, local: []string{`COMMENT ON RULE r ON t IS 'r'`}},
		{name: "same", both: []string{table, `COMMENT ON CONSTRAINT v_short ON t IS 'short'`, `COMMENT ON INDEX t_pkey IS 'key'`}},
	}
	verifyCases(t, "commentpart", cases)
}
