package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestParameterReportsOfSplitQuery: PostgreSQL reports a parameter (ParameterStatus) just
// before ReadyForQuery, when its value differs from the last one reported. A Query or pipeline
// with a SET LOCAL of a reported parameter and a COMMIT, which the shim runs in parts, got a
// report from each part's end — the SET LOCAL's value, then the one the commit put back —
// where PostgreSQL, running it whole, reports nothing (a JDBC driver ends the connection on a
// DateStyle that does not begin with ISO). Reports now go to the client as PostgreSQL's would.
func TestParameterReportsOfSplitQuery(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	o.both(t, `CREATE TABLE prs (id int PRIMARY KEY)`)
	show := func() []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Query{String: "SHOW DateStyle"}}
	}
	steps := []xstep{
		xq("SET application_name = 'x1'"),
		xq("BEGIN; SET LOCAL application_name = 'x3'; INSERT INTO prs VALUES (1); COMMIT"),
		xq("BEGIN; SET LOCAL DateStyle = 'German'; INSERT INTO prs VALUES (2); COMMIT"),
		xq("INSERT INTO prs VALUES (3); SET LOCAL DateStyle = 'SQL'; COMMIT; SELECT 1"),
		xpipe("BEGIN", "SET LOCAL application_name = 'x4'", "INSERT INTO prs VALUES (4)", "COMMIT"),
		xq("BEGIN; SET application_name = 'x5'; INSERT INTO prs VALUES (5); COMMIT; SET application_name = 'x1'"),
		xq("BEGIN; SET application_name = 'x6'; INSERT INTO prs VALUES (6); COMMIT"),
		{msgs: show(), until: "Z"},
	}
	before := e.shim.Stats()
	o.compare(t, steps)
	e.settle(t, before)
}
