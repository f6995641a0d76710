package txshim

import (
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestVerifyCatalogQueriesBelowJIT: verify reads owners, privileges, comments and sequences
// from the catalogs under each snapshot, and verify runs often (after every catch-up, in
// tests). A query the planner prices above jit_above_cost (100000 by default) is JIT-compiled
// first, for 100-500 ms, though it reads a few thousand catalog rows in milliseconds:
// appCommentsSQL, scanning pg_description by its class with a hashed subplan per class, was
// priced at 98402 on an empty database and above 100000 with a couple of hundred commented
// tables (159 ms with JIT, 21 ms without). Each is priced below it on a database of a few
// hundred tables, columns and functions with comments.
func TestVerifyCatalogQueriesBelowJIT(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	db := c.Open(t, c.Database())
	if _, err := db.Exec(`DO $$BEGIN FOR i IN 1..300 LOOP
  EXECUTE format('CREATE TABLE jt%s (id serial PRIMARY KEY, v text)', i);
  EXECUTE format('COMMENT ON TABLE jt%s IS ''t''', i);
  EXECUTE format('COMMENT ON COLUMN jt%s.v IS ''c''', i);
  EXECUTE format('CREATE FUNCTION jf%s() RETURNS int LANGUAGE sql AS ''SELECT 1''', i);
  EXECUTE format('COMMENT ON FUNCTION jf%s() IS ''f''', i);
END LOOP; END$$`); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(capCtx(t, 60*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(verifySettingsSQL); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]string{"appObjectsACLSQL": appObjectsACLSQL, "appCommentsSQL": appCommentsSQL,
		"seqPositionsSQL": seqPositionsSQL, "seqRoleSQL": seqRoleSQL, "seqColumnsSQL": seqColumnsSQL, "clientRoutinesSQL": clientRoutinesSQL} {
		cost := planCost(t, tx, q)
		if cost >= 100000 {
			t.Errorf("%s is priced at %.0f, at or above jit_above_cost (100000): JIT-compiled at every verify", name, cost)
		}
	}
}

// planCost is the planner's total cost of query on q (a *sql.DB or *sql.Tx): what PostgreSQL
// compares with jit_above_cost.
func planCost(t *testing.T, q interface {
	QueryRow(query string, args ...any) *sql.Row
}, query string) float64 {
	t.Helper()
	var plan string
	if err := q.QueryRow("EXPLAIN (FORMAT JSON) " + query).Scan(&plan); err != nil {
		t.Fatalf("EXPLAIN %.80s: %v", query, err)
	}
	var p []struct {
		Plan struct {
			Cost float64 `json:"Total Cost"`
		}
	}
	if err := json.Unmarshal([]byte(plan), &p); err != nil || len(p) != 1 {
		t.Fatalf("plan %s: %v", plan, err)
	}
	return p[0].Plan.Cost
}
