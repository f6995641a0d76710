package txshim

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestExecuteOfParsedExplainMakesTable: a Parse of EXPLAIN ANALYZE CREATE TABLE … AS (the
// refusal, explainMakesRefusal, came at its Execute) and a SQL EXECUTE of it, which runs the
// EXPLAIN and makes the table without an event trigger: the table was on the local database
// only. The Parse is refused.
func TestExecuteOfParsedExplainMakesTable(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	c := e.connect(t)
	_, perr := c.PgConn().Prepare(ctx, "s3", "EXPLAIN ANALYZE CREATE TABLE z3 AS SELECT 1 AS a WITH NO DATA", nil)
	_, xerr := c.Exec(ctx, "EXECUTE s3", pgx.QueryExecModeSimpleProtocol)
	if perr == nil && xerr == nil {
		t.Errorf("Parse and EXECUTE of EXPLAIN ANALYZE CREATE TABLE … AS: no error")
	}
	if perr != nil {
		wantRefused(t, "Parse", perr, "EXPLAIN ANALYZE")
	}
	e.settle(t, before)
	e.sameOnBoth(t, "z3")
}

// TestPrepareMakesTableExtended: PREPARE … AS SELECT … INTO a permanent table sent in the
// extended protocol (Parse, Bind, Execute of the PREPARE), which the shim took for a read that
// passes as it is: the refusal (prepareMakesRefusal) never came, and an EXPLAIN ANALYZE EXECUTE
// of it made the table on the local database only. Refused as in a simple Query.
func TestPrepareMakesTableExtended(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	c := e.connect(t)
	_, err := c.PgConn().ExecParams(ctx, "PREPARE p AS SELECT 1 AS a INTO y WHERE false", nil, nil, nil, nil).Close()
	wantRefused(t, "PREPARE (extended)", err, "PREPARE")
	_, err = c.PgConn().ExecParams(ctx, "EXPLAIN ANALYZE CREATE TABLE y2 AS SELECT 1 AS a WITH NO DATA", nil, nil, nil, nil).Close()
	wantRefused(t, "EXPLAIN ANALYZE CREATE TABLE … AS (extended)", err, "EXPLAIN ANALYZE")
	if _, err := c.Exec(ctx, "EXPLAIN ANALYZE EXECUTE p", pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Errorf("EXPLAIN ANALYZE EXECUTE p: no error")
	}
	e.settle(t, before)
	e.sameOnBoth(t, "y", "y2")
}
