package txshim

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestDDLKeylessReadBelowJIT: before a DDL statement that may leave a table without a key
// (CREATE TABLE, a dropped key), the shim reads the application tables that have none, in
// the client's session, whose JIT setting it keeps. Read with a subplan per pg_class row
// (keylessTablesFrom's CASE), the planner priced it above jit_above_cost (100000 by default)
// on a database of a thousand tables, and PostgreSQL JIT-compiled it before each such
// statement: 34-85 ms for a read of a few milliseconds (auto_explain). It is priced below.
func TestDDLKeylessReadBelowJIT(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 120*time.Second)
	if _, err := db.ExecContext(ctx, `DO $$BEGIN FOR i IN 1..1200 LOOP
  EXECUTE format('CREATE TABLE jt%s (id serial PRIMARY KEY, v text, n int)', i);
  EXECUTE format('CREATE INDEX ON jt%s (v) WHERE n > 1', i);
END LOOP; END$$`); err != nil {
		t.Fatal(err)
	}
	cost := planCost(t, db, afterDDLBeforeSQL(false, true, "CREATE TABLE k (id int)"))
	if cost >= 100000 {
		t.Errorf("the read of the keyless tables before a DDL statement is priced at %.0f, at or above jit_above_cost (100000): JIT-compiled in the client's session before each such statement", cost)
	}
}
