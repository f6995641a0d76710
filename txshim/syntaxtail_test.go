package txshim

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSyntaxErrorAfterCommit: a simple Query holding a COMMIT with a statement after it that
// does not parse. PostgreSQL parses the whole Query before it runs any of it, and runs nothing:
// the shim, which runs the COMMIT itself, sent the statements before it and committed them
// (on both databases) before the rest met its syntax error. Nothing runs, as in PostgreSQL,
// inside a transaction block too, which the error aborts as PostgreSQL's would.
func TestSyntaxErrorAfterCommit(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	before := e.shim.Stats()
	c := e.connect(t)
	for _, q := range []string{
		"BEGIN; INSERT INTO rows VALUES (1); COMMIT; SELEC 1",
		"INSERT INTO rows VALUES (2); COMMIT; SELECT 'unterminated",
		"BEGIN; INSERT INTO rows VALUES (3); COMMIT AND CHAIN; INSERT INTO rows VALUES (4); COMMIT; SELECT 1 +",
	} {
		_, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if pgCode(err) != "42601" {
			t.Errorf("%s: %v, want 42601", q, err)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("%s: status %c, want I", q, st)
		}
	}
	// In the client's transaction block: the error aborts it, nothing of it commits.
	execAll(t, c, "BEGIN", "INSERT INTO rows VALUES (5)")
	if _, err := c.Exec(ctx, "INSERT INTO rows VALUES (6); COMMIT; SELEC 1", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "42601" {
		t.Errorf("in a block: %v, want 42601", err)
	}
	if st := c.PgConn().TxStatus(); st != 'E' {
		t.Errorf("in a block: status %c, want E", st)
	}
	execAll(t, c, "ROLLBACK")
	// In a failed block: it stays failed, as PostgreSQL's, whose COMMIT never ran.
	execAll(t, c, "BEGIN")
	if _, err := c.Exec(ctx, "SELECT 1/0", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "22012" {
		t.Fatalf("SELECT 1/0: %v", err)
	}
	if _, err := c.Exec(ctx, "COMMIT; INSERT INTO rows VALUES (11); SELEC 1", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "42601" {
		t.Errorf("in a failed block: %v, want 42601", err)
	}
	if st := c.PgConn().TxStatus(); st != 'E' {
		t.Errorf("in a failed block: status %c, want E", st)
	}
	execAll(t, c, "ROLLBACK")
	// A Query that parses runs as before.
	if _, err := c.Exec(ctx, "BEGIN; INSERT INTO rows VALUES (7); COMMIT; SELECT 1 FROM nosuch", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "42P01" {
		t.Errorf("runtime error after COMMIT: %v, want 42P01", err)
	}
	execAll(t, c, "BEGIN", "INSERT INTO rows VALUES (8)")
	execAll(t, c, "INSERT INTO rows VALUES (9); COMMIT; INSERT INTO rows VALUES (10)")
	e.settle(t, before)
	for _, got := range []string{
		queryOne[string](t, e.localDB, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM rows"),
		e.peerString(t, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM rows"),
	} {
		if got != "7,8,9,10" {
			t.Errorf("rows: %q, want 7,8,9,10", got)
		}
	}
}

// TestSyntaxErrorAfterRollback: a simple Query holding a ROLLBACK (or ABORT) with a statement
// after it that does not parse. PostgreSQL runs none of it: the client's transaction block stays
// open, failed, and no statement before the ROLLBACK runs. The shim, which splits the Query
// there, ran the statements before and the ROLLBACK, leaving the session idle.
func TestSyntaxErrorAfterRollback(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE SEQUENCE sq")
	c := e.connect(t)
	for _, q := range []string{
		"SELECT nextval('sq'); ROLLBACK; SELEC 1",
		"SELECT nextval('sq'); ABORT; SELEC 1",
		"BEGIN; SELECT nextval('sq'); ROLLBACK AND CHAIN; SELEC 1",
	} {
		res, err := c.PgConn().Exec(ctx, q).ReadAll()
		if pgCode(err) != "42601" || len(res) != 0 {
			t.Errorf("%s: %v, %d results, want 42601 alone", q, err, len(res))
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("%s: status %c, want I", q, st)
		}
	}
	// In the client's transaction block: the error aborts it, the ROLLBACK never ran.
	for _, q := range []string{"ROLLBACK; SELEC 1", "SELECT 1; ABORT; SELEC 1"} {
		execAll(t, c, "BEGIN")
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); pgCode(err) != "42601" {
			t.Errorf("in a block: %s: %v, want 42601", q, err)
		}
		if st := c.PgConn().TxStatus(); st != 'E' {
			t.Errorf("in a block: %s: status %c, want E", q, st)
		}
		execAll(t, c, "ROLLBACK")
	}
	if v := queryOne[int64](t, e.localDB, "SELECT last_value FROM sq"); v != 1 {
		t.Errorf("sq's last_value %d, want 1: a nextval before the ROLLBACK ran", v)
	}
}

// TestSyntaxErrorAfterRefused: a simple Query holding a statement the shim refuses, with a
// statement after it that does not parse. PostgreSQL runs none of it and reports the syntax
// error; the shim ran the statements before the refused one (a BEGIN among them leaving the
// client's block open and failed) and reported its refusal instead.
func TestSyntaxErrorAfterRefused(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	c := e.connect(t)
	for _, q := range []string{
		"BEGIN; INSERT INTO rows VALUES (1); PREPARE TRANSACTION 'x'; SELEC 1",
		"BEGIN; INSERT INTO rows VALUES (1); EXPLAIN ANALYZE CREATE TABLE z AS SELECT 1; SELEC 1",
		"BEGIN; INSERT INTO rows VALUES (1); PREPARE q AS SELECT 1 INTO z; SELEC 1",
	} {
		res, err := c.PgConn().Exec(ctx, q).ReadAll()
		if pgCode(err) != "42601" || len(res) != 0 {
			t.Errorf("%s: %v, %d results, want 42601 alone", q, err, len(res))
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("%s: status %c, want I", q, st)
			execAll(t, c, "ROLLBACK")
		}
	}
	// Without the syntax error, the refusal stands.
	if _, err := c.Exec(ctx, "INSERT INTO rows VALUES (1); PREPARE TRANSACTION 'x'; SELECT 1", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "0A000" {
		t.Errorf("refused statement: %v, want 0A000", err)
	}
}

// TestParseCheckCancelled: the client's cancel (or its statement_timeout) landing on the parse
// check's own statements in its transaction block. On the SAVEPOINT, the block failed, the
// check's ROLLBACK TO SAVEPOINT found no savepoint and its RELEASE failed: the session ended.
// The Query now fails as cancelled, the block failed as PostgreSQL's would be; a cancel on the
// ROLLBACK TO SAVEPOINT or the RELEASE is survived, the Query run.
func TestParseCheckCancelled(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	c := e.connect(t)

	cancelSteps(e.shim.Shim, "SAVEPOINT "+parseCheckName, 1)
	execAll(t, c, "BEGIN", "INSERT INTO rows VALUES (1)")
	if _, err := c.Exec(ctx, "INSERT INTO rows VALUES (2); COMMIT; SELECT 1", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "57014" {
		t.Errorf("cancel on the SAVEPOINT: %v, want 57014", err)
	}
	if st := c.PgConn().TxStatus(); st != 'E' {
		t.Errorf("cancel on the SAVEPOINT: status %c, want E", st)
	}
	if _, err := c.Exec(ctx, "ROLLBACK", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("ROLLBACK after a cancelled check: %v", err)
	}

	for i, prefix := range []string{"ROLLBACK TO SAVEPOINT " + parseCheckName, "RELEASE SAVEPOINT " + parseCheckName} {
		cancelSteps(e.shim.Shim, prefix, 1)
		execAll(t, c, "BEGIN", fmt.Sprintf("INSERT INTO rows VALUES (%d)", 10*i+10))
		if _, err := c.Exec(ctx, fmt.Sprintf("INSERT INTO rows VALUES (%d); COMMIT; SELECT 1", 10*i+11), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("cancel on %s: %v", prefix, err)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("cancel on %s: status %c, want I", prefix, st)
			execAll(t, c, "ROLLBACK")
		}
	}
	if got := queryOne[string](t, e.localDB, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM rows"); got != "10,11,20,21" {
		t.Errorf("rows: %q, want 10,11,20,21", got)
	}
}
