package txshim

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestDDLGuardForgedSettings: the DDL guard went by settings any client may write. A client
// that set tandem.ddl = on itself (SET, set_config, inside the DO block) ran DDL the shim never
// saw, unrecorded; one that set tandem.client = off turned the guard off for its session. The
// local database got a table the peer never did. Each is refused (0A000) now, and nothing of it
// stays on either database.
func TestDDLGuardForgedSettings(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	for i, steps := range [][]string{
		{"SET tandem.ddl = on", "DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$"},
		{"SELECT set_config('tandem.ddl', 'on', false)", "DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$"},
		{"DO $$BEGIN PERFORM set_config('tandem.ddl', 'on', true); CREATE TABLE forged (i int PRIMARY KEY); END$$"},
		{"BEGIN", "SET LOCAL tandem.ddl = on", "DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$", "COMMIT"},
		{"SET tandem.client = off", "DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$"},
		{"DO $$BEGIN PERFORM set_config('tandem.client', 'off', true); CREATE TABLE forged (i int PRIMARY KEY); END$$"},
		{"RESET ALL", "DISCARD ALL", "SELECT set_config('tandem.client', '', false)", "DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$"},
		// The mark as the client read it inside its own recorded statement, set back later in
		// the same transaction.
		{"BEGIN", "CREATE TABLE leak AS SELECT current_setting('tandem.ddl', true) AS m, current_setting('tandem.ddl_id', true) AS i",
			"SELECT set_config('tandem.ddl', m, true), set_config('tandem.ddl_id', i, true) FROM leak",
			"DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$", "COMMIT"},
		// The same in one simple-protocol Query (the statements after the recorded one share
		// one statement start time).
		{"CREATE TABLE leak2 AS SELECT current_setting('tandem.ddl', true) AS m; " +
			"SELECT set_config('tandem.ddl', m, true) FROM leak2; DO $$BEGIN CREATE TABLE forged (i int PRIMARY KEY); END$$"},
	} {
		c := e.connect(t)
		var err error
		for _, q := range steps {
			mode := pgx.QueryExecModeCacheStatement
			if strings.Contains(q, "; ") {
				mode = pgx.QueryExecModeSimpleProtocol
			}
			if _, err = c.Exec(ctx, q, mode); err != nil {
				break
			}
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.HasPrefix(pe.Message, "tandem:") {
			t.Errorf("case %d %q: err = %v, want 0A000 tandem: … refused", i, steps, err)
		}
		if got := queryOne[int](t, e.localDB, `SELECT count(*) FROM pg_class WHERE relname = 'forged'`); got != 0 {
			t.Errorf("case %d %q: table forged made on the local database only", i, steps)
			e.both(t, "DROP TABLE IF EXISTS forged")
		}
	}
	e.settle(t, before)
}

// TestDDLGuardForgedDepth: tandem.ddl_depth, by which the guard tells a recorded statement's own
// command from one a function it runs does, is a setting any client may write. With it set
// below zero, the end of a temporary table's CREATE inside a function the recorded CREATE
// TABLE … AS called counted as the statement's own: its record was taken back as DDL on
// temporary objects only, and the peer never got the permanent table.
func TestDDLGuardForgedDepth(t *testing.T) {
	t.Parallel()
	ctasOverScratch(t, "perm3", "SET tandem.ddl_depth = '-1'")
}

// TestDDLGuardNoKey: with tandem.ddl_key emptied (by a superuser), every digest the guard
// compares a mark with was NULL, and a forged bound mark (s:…) passed as no comparison held:
// DDL inside a DO block ran unrecorded. Without a key no mark is valid.
func TestDDLGuardNoKey(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	if _, err := e.localDB.Exec("DELETE FROM tandem.ddl_key"); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t)
	_, err := c.Exec(ctx, "DO $$BEGIN PERFORM set_config('tandem.ddl', 's:1:x', true); CREATE TABLE forged (i int PRIMARY KEY); END$$")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Errorf("DDL in a DO block under a forged mark with no key: err = %v, want 0A000", err)
	}
	if got := queryOne[int](t, e.localDB, `SELECT count(*) FROM pg_class WHERE relname = 'forged'`); got != 0 {
		t.Errorf("table forged made on the local database only")
	}
}
