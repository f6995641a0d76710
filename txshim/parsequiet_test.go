package txshim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// serverLog is the server log of cluster c (pgtest writes it to postgres.log in its dir).
func serverLog(t *testing.T, c *pgtest.Cluster) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir(), "postgres.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestParseCheckQuiet: the parse check of a simple Query with statements after a COMMIT (a Parse
// of the whole Query that fails with 42601) left an ERROR line and a STATEMENT line holding the
// whole Query's text — a password of an ALTER ROLE in it too — in PostgreSQL's server log, for
// every such Query. For a superuser's session it is quieted now (log_min_messages and
// log_min_error_statement set locally around it), the session's own values back after, and the
// client sees the replies PostgreSQL gives the Query, nothing more.
func TestParseCheckQuiet(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)", "CREATE TABLE direct (id int PRIMARY KEY)")
	r := dialRaw(t, e.shim)
	d := dialRawDSN(t, e.local.DSN(e.local.Database()))

	// Outside a transaction block: the shim's BEGIN and ROLLBACK around the check show nowhere.
	q := "BEGIN; INSERT INTO %s VALUES (1); COMMIT; SELECT 'sekrit-one'"
	got, want := r.query(strings.ReplaceAll(q, "%s", "rows")), d.query(strings.ReplaceAll(q, "%s", "direct"))
	if got != want {
		t.Errorf("outside a block: replies %q, want %q (PostgreSQL's)", got, want)
	}
	// In the client's transaction block.
	r.query("BEGIN")
	d.query("BEGIN")
	q = "INSERT INTO %s VALUES (2); COMMIT; SELECT 'sekrit-two'"
	got, want = r.query(strings.ReplaceAll(q, "%s", "rows")), d.query(strings.ReplaceAll(q, "%s", "direct"))
	if got != want {
		t.Errorf("in a block: replies %q, want %q (PostgreSQL's)", got, want)
	}
	c := e.connect(t)
	if _, err := c.Exec(ctx, "BEGIN; INSERT INTO rows VALUES (3); COMMIT; SELECT 'sekrit-three'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if st := c.PgConn().TxStatus(); st != 'I' {
		t.Errorf("status %c, want I", st)
	}
	for _, set := range []string{"log_min_messages", "log_min_error_statement"} {
		var v string
		if err := c.QueryRow(ctx, "SELECT current_setting($1)", set).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"log_min_messages": "warning", "log_min_error_statement": "error"}[set]; v != want {
			t.Errorf("%s is %q after the check, want %q", set, v, want)
		}
	}
	if got := queryOne[string](t, e.localDB, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1,2,3" {
		t.Errorf("rows: %q, want 1,2,3", got)
	}
	log := serverLog(t, e.local)
	for _, bad := range []string{"cannot insert multiple commands", "sekrit-one", "sekrit-two", "sekrit-three"} {
		if strings.Contains(log, bad) {
			t.Errorf("the server log holds %q", bad)
		}
	}
	// A role that may not change the log settings (SET ROLE: is_superuser off) is checked as
	// before, unquieted, and not refused the settings.
	execAll(t, admin, "CREATE ROLE plain", "GRANT ALL ON rows TO plain")
	execAll(t, c, "SET ROLE plain")
	if _, err := c.Exec(ctx, "BEGIN; INSERT INTO rows VALUES (4); COMMIT; SELECT 'plain-one'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Errorf("as a plain role: %v", err)
	}
	execAll(t, c, "BEGIN")
	if _, err := c.Exec(ctx, "INSERT INTO rows VALUES (5); COMMIT; SELECT 'plain-two'", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Errorf("as a plain role in a block: %v", err)
	}
	if st := c.PgConn().TxStatus(); st != 'I' {
		t.Errorf("as a plain role: status %c, want I", st)
	}
	log = serverLog(t, e.local)
	if strings.Contains(log, "permission denied") || !strings.Contains(log, "plain-one") || !strings.Contains(log, "plain-two") {
		t.Errorf("as a plain role: the check is not logged as before, or its settings were refused")
	}
	if t.Failed() {
		t.Logf("server log:\n%s", log)
	}
}

// logSettingsBack fails t unless c's session logs as PostgreSQL's defaults have it (what the
// parse check quiets, locally).
func logSettingsBack(t *testing.T, c *pgx.Conn, what string) {
	t.Helper()
	for set, want := range map[string]string{"log_min_messages": "warning", "log_min_error_statement": "error"} {
		var v string
		if err := c.QueryRow(context.Background(), "SELECT current_setting($1)", set).Scan(&v); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if v != want {
			t.Errorf("%s: %s is %q, want %q: the session was left quieted", what, set, v, want)
		}
	}
}

// TestParseCheckQuietCancelled: the client's cancel (or its statement_timeout) landing on the
// statements that quiet the parse check, or on those that end it, never leaves the session's
// logging quieted, and the Query runs (or, on the SAVEPOINT, fails as cancelled).
func TestParseCheckQuietCancelled(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	c := e.connect(t)
	id := 0
	run := func(what string, block bool) {
		t.Helper()
		id++
		q := fmt.Sprintf("BEGIN; INSERT INTO rows VALUES (%d); COMMIT; SELECT 1", id)
		if block {
			execAll(t, c, "BEGIN")
			q = fmt.Sprintf("INSERT INTO rows VALUES (%d); COMMIT; SELECT 1", id)
		}
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("%s: status %c, want I", what, st)
			execAll(t, c, "ROLLBACK")
		}
		logSettingsBack(t, c, what)
	}
	for _, prefix := range []string{parseCheckBegin, parseQuiet[0], parseQuiet[1], parseCheckEnd} {
		sent := cancelSteps(e.shim.Shim, prefix, 1)
		run("outside a block, cancel on "+prefix, false)
		if sent.Load() == 0 {
			t.Errorf("outside a block: no %q sent", prefix)
		}
	}
	for _, prefix := range []string{parseQuiet[0], parseQuiet[1], "ROLLBACK TO SAVEPOINT " + parseCheckName, "RELEASE SAVEPOINT " + parseCheckName} {
		sent := cancelSteps(e.shim.Shim, prefix, 1)
		run("in a block, cancel on "+prefix, true)
		if sent.Load() == 0 {
			t.Errorf("in a block: no %q sent", prefix)
		}
	}
	// On the SAVEPOINT: the block failed, the Query with it.
	cancelSteps(e.shim.Shim, "SAVEPOINT "+parseCheckName, 1)
	execAll(t, c, "BEGIN")
	if _, err := c.Exec(ctx, "INSERT INTO rows VALUES (100); COMMIT; SELECT 1", pgx.QueryExecModeSimpleProtocol); pgCode(err) != "57014" {
		t.Errorf("cancel on the SAVEPOINT: %v, want 57014", err)
	}
	execAll(t, c, "ROLLBACK")
	logSettingsBack(t, c, "cancel on the SAVEPOINT")
	e.shim.hooks.ownStep.clear()
	if got := queryOne[string](t, e.localDB, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1,2,3,4,5,6,7,8" {
		t.Errorf("rows: %q, want 1,2,3,4,5,6,7,8", got)
	}
}

// TestParseCheckNotForwarded: a parse check that failed for another reason than the Query's
// several statements, without an error position (a cancel or statement_timeout landing on it, a
// lack of memory), or that did not fail (PostgreSQL reading one statement where the shim's lexer
// reads a COMMIT and more), made the shim forward the whole Query to PostgreSQL, which then ran
// it — its COMMIT too, past the shim's dual commit. The Query fails now, having run nothing; in
// the client's transaction block the block fails with it.
func TestParseCheckNotForwarded(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)", "CREATE TABLE locked (id int)")
	lock, err := e.localDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t)
	execAll(t, c, "SET statement_timeout = '300ms'")
	for _, tc := range []struct {
		what, other, code string
		cancelSet         bool
	}{
		// The client's statement_timeout lands on the check (a Parse waiting for a lock).
		{"timed out", "SELECT * FROM locked", "57014", false},
		// PostgreSQL reads one statement.
		{"one statement", "SELECT 1", "0A000", false},
		// The same, a cancel landing on the quieting before: the Parse fails for the aborted
		// transaction (25P02), and the client gets the cancel.
		{"one statement after a cancel", "SELECT 1", "57014", true},
	} {
		// parseAs makes the parse check of q parse tc.other instead.
		parseAs := func(q, other string) {
			e.shim.hooks.ownStep.set(func(s string) string {
				if s == q {
					return other
				}
				if tc.cancelSet && s == parseQuiet[0] {
					return selfCancel
				}
				return s
			})
		}
		q := "BEGIN; INSERT INTO rows VALUES (1); COMMIT; SELECT 1"
		parseAs(q, tc.other)
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); pgCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.what, err, tc.code)
		}
		if st := c.PgConn().TxStatus(); st != 'I' {
			t.Errorf("%s: status %c, want I", tc.what, st)
			execAll(t, c, "ROLLBACK")
		}
		execAll(t, c, "BEGIN", "INSERT INTO rows VALUES (2)")
		q = "INSERT INTO rows VALUES (3); COMMIT; SELECT 1"
		parseAs(q, tc.other)
		if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); pgCode(err) != tc.code {
			t.Errorf("%s, in a block: %v, want %s", tc.what, err, tc.code)
		}
		if st := c.PgConn().TxStatus(); st != 'E' {
			t.Errorf("%s, in a block: status %c, want E", tc.what, st)
		}
		execAll(t, c, "ROLLBACK")
		logSettingsBack(t, c, tc.what)
		if got := queryOne[string](t, e.localDB, "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM rows"); got != "" {
			t.Errorf("%s: rows %q, want none: the Query ran", tc.what, got)
			execAll(t, admin, "DELETE FROM rows")
		}
	}
}
