package txshim

import (
	"context"
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestTempTableDDL: DDL on a session's temporary objects — ALTER TABLE, CREATE INDEX, COMMENT,
// DROP of a temporary table made earlier — has nothing to do on the peer, where the table does
// not exist: recorded in tandem.ddl, its replay there failed (42P01) and stopped shipping.
func TestTempTableDDL(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	if _, err := admin.Exec(ctx, `CREATE TABLE rows (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE tt (a int)",
		"ALTER TABLE tt ADD COLUMN b int",
		"CREATE INDEX tt_a ON tt (a)",
		"COMMENT ON TABLE tt IS 'scratch'",
		"ALTER INDEX tt_a RENAME TO tt_a2",
		"BEGIN; ALTER TABLE pg_temp.tt ALTER COLUMN b SET DEFAULT 1; INSERT INTO rows VALUES (1); COMMIT",
		"DROP TABLE tt",
		"INSERT INTO rows VALUES (2)",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1,2" {
		t.Fatalf("rows on the peer: %q, want 1,2", got)
	}
}

// TestTempDDLInsideRecordedDDL: a recorded statement on permanent objects that runs a function
// making a temporary table (CREATE TABLE … AS SELECT … FROM f()) fires the DDL guard for that
// inner command first; it took the outer statement's record back, and the peer never made
// the table.
func TestTempDDLInsideRecordedDDL(t *testing.T) {
	t.Parallel()
	ctasOverScratch(t, "perm2")
}

// ctasOverScratch runs, through the shim, the statements first and then CREATE TABLE table AS
// SELECT … FROM scratch(), a function that makes and drops a temporary table, and checks that
// the peer got the table.
func ctasOverScratch(t *testing.T, table string, first ...string) {
	e := startAccEnv(t)
	c := e.connect(t)
	execAll(t, c,
		`CREATE FUNCTION scratch() RETURNS SETOF int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE s (a int);
  INSERT INTO s VALUES (1);
  RETURN QUERY SELECT a FROM s;
  DROP TABLE s;
END $$`,
	)
	before := e.shim.Stats()
	execAll(t, c, append(first, "CREATE TABLE "+table+" AS SELECT x AS id FROM scratch() x")...)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT coalesce(to_regclass('"+table+"')::text, 'missing')"); got != table {
		t.Fatalf("%s on the peer: %q", table, got)
	}
}

// TestTempTableTriggerDDL: a trigger or policy on a temporary table is in no schema of its own
// (pg_event_trigger_ddl_commands gives it none): the guard kept its record, and the peer, which
// lacks the table, refused it (42P01) and stopped shipping.
func TestTempTableTriggerDDL(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	admin := e.connect(t)
	execAll(t, admin,
		`CREATE TABLE rows (id int PRIMARY KEY)`,
		`CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
	)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE tt (a int)",
		"CREATE TRIGGER tt_noop BEFORE INSERT ON tt FOR EACH ROW EXECUTE FUNCTION noop()",
		"CREATE POLICY tt_all ON tt USING (true)",
		"CREATE TRIGGER rows_noop BEFORE INSERT ON rows FOR EACH ROW EXECUTE FUNCTION noop()",
		"INSERT INTO rows VALUES (1)",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1" {
		t.Fatalf("rows on the peer: %q, want 1", got)
	}
	if got := e.peerString(t, "SELECT count(*) FROM pg_trigger WHERE tgname = 'rows_noop'"); got != "1" {
		t.Fatalf("trigger rows_noop on the peer: %q, want 1", got)
	}
}

// TestTempTableAddColumnDefault: a column added with a default computed per database (now())
// to a temporary table with rows: that DDL does not reach the peer, so there is nothing to
// diverge, yet the after-DDL check refused it (0A000).
func TestTempTableAddColumnDefault(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE tt (a int)",
		"INSERT INTO tt VALUES (1)",
		"ALTER TABLE tt ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
		"ALTER TABLE tt ADD COLUMN n serial",
	)
	e.settle(t, before)
}

// TestTempTableRetype: ALTER COLUMN … TYPE … USING an expression that is not immutable, on a
// temporary table with rows: that DDL does not reach the peer, yet the check refused it (0A000).
func TestTempTableRetype(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE tt (a int)",
		"INSERT INTO tt VALUES (1)",
		"ALTER TABLE tt ALTER COLUMN a TYPE text USING (a + random())::text",
	)
	e.settle(t, before)
}

// execAll runs each statement on c, failing the test at the first error.
func execAll(t *testing.T, c *pgx.Conn, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := c.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// both runs q straight on the local and the peer database.
func (e *accEnv) both(t *testing.T, q string) {
	t.Helper()
	for _, db := range []*sql.DB{e.localDB, e.peerDB} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestTempDDLTriggerRowBetween: DDL on a temporary table that the shim records and the guard
// takes back (ALTER TABLE tmp ...), while an ordinary event trigger of the user's, firing before
// the guard, writes a row (an audit log). The apply dropped the record only when its delete
// came right behind its insert; with the trigger's row between, it ran the ALTER TABLE on the
// peer, which lacks the table: 'DDL of change 1: ALTER TABLE trw ALTER COLUMN a TYPE bigint:
// ERROR: relation "trw" does not exist', shipping stopped and the peer needed resync.
func TestTempDDLTriggerRowBetween(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	c := e.connect(t)
	execAll(t, c, "CREATE TABLE ddl_log (tag text)", `CREATE FUNCTION audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ddl_log VALUES (TG_TAG);
END $$`, "CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION audit_ddl()")
	before := e.shim.Stats()
	execAll(t, c, "CREATE TEMP TABLE trw (a int)", "INSERT INTO trw VALUES (1)", "ALTER TABLE trw ALTER COLUMN a TYPE bigint",
		"CREATE INDEX ON trw (a)", "BEGIN", "ALTER TABLE trw ADD COLUMN b int", "CREATE TABLE perm (id int PRIMARY KEY)", "COMMIT")
	e.settle(t, before)
	e.sameOnBoth(t, "perm")
}
