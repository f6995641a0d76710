package txshim

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestExplainAnalyzeRefresh: EXPLAIN ANALYZE REFRESH MATERIALIZED VIEW, which PostgreSQL
// explains as a utility statement with no plan and does not run, was refused as an EXPLAIN
// ANALYZE that makes a table (explainMakesRefusal). It runs, as in PostgreSQL.
func TestExplainAnalyzeRefresh(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE src (a int PRIMARY KEY)", "INSERT INTO src VALUES (1)", "CREATE MATERIALIZED VIEW mv AS SELECT a FROM src")
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c, "INSERT INTO src VALUES (2)")
	for _, q := range []string{"EXPLAIN ANALYZE REFRESH MATERIALIZED VIEW mv", "EXPLAIN (ANALYZE, COSTS OFF) REFRESH MATERIALIZED VIEW mv"} {
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	e.settle(t, before)
	for _, db := range []string{queryOne[string](t, e.localDB, "SELECT string_agg(a::text, ',') FROM mv"), e.peerString(t, "SELECT string_agg(a::text, ',') FROM mv")} {
		if db != "1" {
			t.Errorf("mv: %q, want 1", db)
		}
	}
}
