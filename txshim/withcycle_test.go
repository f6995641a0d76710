package txshim

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestWithSearchCycleInsert: a data-modifying WITH RECURSIVE whose CTE has a SEARCH or CYCLE
// clause (… CYCLE n SET is_cycle USING path INSERT INTO dst …) is an INSERT, but the lexer read
// INTO after the clause's last word for SELECT … INTO and took the statement for DDL.
func TestWithSearchCycleInsert(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE dst (n int PRIMARY KEY)", "CREATE TABLE dst2 (n int PRIMARY KEY)")
	before := e.shim.Stats()
	c := e.connect(t)
	for _, q := range []string{
		"WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t WHERE n < 3) CYCLE n SET is_cycle USING path INSERT INTO dst SELECT n FROM t",
		"WITH RECURSIVE t(n) AS (SELECT 11 UNION ALL SELECT n+1 FROM t WHERE n < 13) SEARCH DEPTH FIRST BY n SET ord INSERT INTO dst SELECT n FROM t",
		"EXPLAIN (ANALYZE, COSTS OFF) WITH RECURSIVE t(n) AS (SELECT 21 UNION ALL SELECT n+1 FROM t WHERE n < 23) CYCLE n SET is_cycle USING path INSERT INTO dst SELECT n FROM t",
	} {
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	// SELECT … INTO after such a clause still makes a table, and ships.
	execAll(t, c, "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM t WHERE n < 3) CYCLE n SET is_cycle USING path SELECT n INTO made FROM t")
	e.settle(t, before)
	e.sameOnBoth(t, "made")
	if got := e.peerString(t, "SELECT string_agg(n::text, ',' ORDER BY n) FROM dst"); got != "1,2,3,11,12,13,21,22,23" {
		t.Errorf("dst on the peer: %q", got)
	}
	for _, q := range []string{
		"WITH RECURSIVE t(n) AS (SELECT 1) CYCLE n SET is_cycle USING path INSERT INTO dst SELECT n FROM t",
		"WITH RECURSIVE t(n) AS (SELECT 1) CYCLE n SET is_cycle TO 'Y' DEFAULT 'N' USING path MERGE INTO dst USING t ON dst.n = t.n WHEN NOT MATCHED THEN INSERT VALUES (t.n)",
		"WITH RECURSIVE t(n) AS (SELECT 1) SEARCH BREADTH FIRST BY n SET ord INSERT INTO dst SELECT n FROM t",
	} {
		for _, st := range splitStatements(q) {
			if st.Kind != kindWrite {
				t.Errorf("%s: %v, want write", q, st.Kind)
			}
		}
	}
	// Columns named cycle and insert: a SELECT … INTO still.
	for _, st := range splitStatements("WITH x AS (SELECT 1 AS a) SELECT (a) cycle, a AS insert INTO t FROM x") {
		if st.Kind != kindDDL {
			t.Errorf("SELECT (a) cycle, a AS insert INTO t: %v, want ddl", st.Kind)
		}
	}
}

// TestSelectIntoAfterBareLabels: columns labelled cycle, set and insert without AS (bare labels)
// before INTO: a SELECT … INTO, which PostgreSQL runs, that the lexer took since 3d4073e for an
// INSERT after a CTE's CYCLE clause — a write, run unrecorded and refused by the guard as a
// SELECT INTO "inside a DO block, function, procedure or trigger". A CYCLE clause has a USING,
// a SEARCH clause BREADTH or DEPTH.
func TestSelectIntoAfterBareLabels(t *testing.T) {
	t.Parallel()
	for _, q := range []string{
		"WITH w AS (SELECT 1) SELECT (1) cycle, 2 set, 3 insert INTO z FROM w",
		"WITH w AS (SELECT 1) SELECT (1) search, 2 set, 3 insert INTO z FROM w",
	} {
		for _, st := range splitStatements(q) {
			if st.Kind != kindDDL {
				t.Errorf("%s: %v, want ddl", q, st.Kind)
			}
		}
	}
}
