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

// TestExplainExecuteMakesTableMerged: EXPLAIN ANALYZE EXECUTE of a statement the shim knows
// only as one of two (a Parse or PREPARE of its name after one that may still be held), one of
// which is a SELECT … INTO: the shim's record of it was a plain write, and the table was made on
// the local database only. Refused as for a statement known to make a table.
func TestExplainExecuteMakesTableMerged(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	c := e.connect(t)
	// A PREPARE of the name that fails (42P05): PostgreSQL holds the SELECT … INTO.
	if _, err := c.PgConn().Prepare(ctx, "s1", "SELECT 1 AS a INTO z1 WHERE false", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "PREPARE s1 AS SELECT 1", pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Fatal("PREPARE of a name in use: no error")
	}
	_, err := c.Exec(ctx, "EXPLAIN ANALYZE EXECUTE s1", pgx.QueryExecModeSimpleProtocol)
	wantRefused(t, "EXPLAIN ANALYZE EXECUTE s1", err, "EXPLAIN ANALYZE")
	// A Close that may have been skipped (not first in its request) before a Parse of the name.
	if _, err := c.PgConn().Prepare(ctx, "s2", "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	p := c.PgConn().StartPipeline(ctx)
	p.SendPrepare("x", "SELECT 2", nil)
	p.SendDeallocate("s2")
	p.SendPrepare("s2", "SELECT 1 AS a INTO z2 WHERE false", nil)
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, "EXPLAIN ANALYZE EXECUTE s2", pgx.QueryExecModeSimpleProtocol)
	wantRefused(t, "EXPLAIN ANALYZE EXECUTE s2", err, "EXPLAIN ANALYZE")
	e.settle(t, before)
	e.sameOnBoth(t, "z1", "z2")
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

// TestExplainExecuteUnicodeName: EXPLAIN ANALYZE EXECUTE U&"…" of a SELECT … INTO parsed in
// the extended protocol: the lexer read the name as the word U, which names no statement the
// shim knows, and the table was made on the local database only.
func TestExplainExecuteUnicodeName(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	c := e.connect(t)
	if _, err := c.PgConn().Prepare(ctx, "s1", "SELECT 1 AS a INTO zu WHERE false", nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`EXPLAIN ANALYZE EXECUTE U&"s\0031"`, `EXPLAIN ANALYZE EXECUTE u&"s!0031" UESCAPE '!'`, `EXPLAIN ANALYZE EXECUTE U&"s1"`} {
		_, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		wantRefused(t, q, err, "EXPLAIN ANALYZE")
	}
	e.settle(t, before)
	e.sameOnBoth(t, "zu")
}

// TestPrepareMakesTableReadOnlyThenDual: PREPARE … AS SELECT … INTO a permanent table while the
// site is read-only (where DDL is not recorded, and the refusal, prepareMakesRefusal, was not
// made), then EXPLAIN ANALYZE EXECUTE of it once the site is master in dual mode: the shim knew
// the statement only as a SQL PREPARE, and the table was made on the local database only.
func TestPrepareMakesTableReadOnlyThenDual(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	c := e.connect(t)
	e.shim.SetMode(ModeReadOnly, 1)
	_, err := c.Exec(ctx, "PREPARE p AS SELECT 1 AS a INTO zr WHERE false", pgx.QueryExecModeSimpleProtocol)
	t.Logf("PREPARE in read-only mode: %v", err)
	_, err = c.PgConn().Prepare(ctx, "s", "EXPLAIN ANALYZE CREATE TABLE zs AS SELECT 1 AS a WITH NO DATA", nil)
	t.Logf("Parse of EXPLAIN ANALYZE CREATE TABLE … AS in read-only mode: %v", err)
	e.shim.SetMode(ModeDual, 1)
	before := e.shim.Stats()
	for _, q := range []string{"EXPLAIN ANALYZE EXECUTE p", "EXECUTE s"} {
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	e.settle(t, before)
	e.sameOnBoth(t, "zr", "zs")
}
