package txshim

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestEventTriggerAlwaysRows: an event trigger of the user's made ENABLE ALWAYS that writes a
// row (an audit log) when a statement the shim records runs: it fires in the peer's apply too,
// which runs the statement, and the peer got the row twice — its trigger's and the shipped one
// (one ENABLE REPLICA wrote it on the peer alone). Refused (0A000) before anything commits.
func TestEventTriggerAlwaysRows(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	c := e.connect(t)
	logDDL(t, c,
		"CREATE EVENT TRIGGER log_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION log_ddl()",
		"ALTER EVENT TRIGGER log_ddl ENABLE ALWAYS")
	before := e.shim.Stats()
	for _, q := range []string{"CREATE TABLE t1 (id int PRIMARY KEY)", "ALTER EVENT TRIGGER log_ddl ENABLE REPLICA", "CREATE TABLE t2 (id int PRIMARY KEY)"} {
		_, err := c.Exec(t.Context(), q)
		if strings.HasPrefix(q, "CREATE") {
			wantRefused(t, q, err, "log_ddl")
		} else if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.settle(t, before)
	local := queryOne[string](t, e.localDB, "SELECT count(*)::text FROM ddl_log")
	if peer := e.peerString(t, "SELECT count(*)::text FROM ddl_log"); peer != local {
		t.Fatalf("ddl_log rows: local %s, peer %s", local, peer)
	}
	e.sameOnBoth(t, "t1", "t2")
}

// TestEventTriggerAlwaysNested: an event trigger of the user's made ENABLE ALWAYS for a command
// that runs nested in a statement the shim records, and that the peer's run of it runs too —
// the shim's own ALTER TABLE ... REPLICA IDENTITY FULL of a keyless table, the commands of an
// extension's script. Only the statement's own tag was checked (CREATE TABLE, CREATE
// EXTENSION), so the trigger wrote its row on the local database, shipped, and again on the
// peer: 'table public.ddl_log has 1 rows on the local database but 2 on the peer'. Refused.
func TestEventTriggerAlwaysNested(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	c := e.connect(t)
	logDDL(t, c)
	before := e.shim.Stats()
	for _, s := range []struct{ tag, q string }{
		{"ALTER TABLE", "CREATE TABLE nk (a int)"},
		{"CREATE FUNCTION", "CREATE EXTENSION tsm_system_rows"},
	} {
		execAll(t, c, "CREATE EVENT TRIGGER log_ddl ON ddl_command_end WHEN TAG IN ('"+s.tag+"') EXECUTE FUNCTION log_ddl()",
			"ALTER EVENT TRIGGER log_ddl ENABLE ALWAYS")
		_, err := c.Exec(t.Context(), s.q)
		wantRefused(t, s.q, err, "log_ddl")
		execAll(t, c, "DROP EVENT TRIGGER log_ddl")
	}
	e.settle(t, before)
	local := queryOne[string](t, e.localDB, "SELECT count(*)::text FROM ddl_log")
	if peer := e.peerString(t, "SELECT count(*)::text FROM ddl_log"); peer != local {
		t.Fatalf("ddl_log rows: local %s, peer %s", local, peer)
	}
	e.sameOnBoth(t, "nk")
}

// TestEventTriggerAlwaysRewrite: an event trigger of the user's made ENABLE ALWAYS on
// table_rewrite, which the guard did not look at: ALTER TABLE ... ALTER COLUMN ... TYPE rewrote
// the table on the local database and, in the peer's run of it, there too, and the trigger wrote
// its row on both, the local one shipped on top: 'table public.ddl_log has 1 rows on the local
// database but 2 on the peer'. Refused; the rewrite of a temporary table still runs.
func TestEventTriggerAlwaysRewrite(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	c := e.connect(t)
	execAll(t, c, "CREATE TABLE ddl_log (tag text)", "CREATE TABLE rw (id int PRIMARY KEY, a int)", "INSERT INTO rw VALUES (1, 1)",
		`CREATE FUNCTION log_rw() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF pg_event_trigger_table_rewrite_oid() = 'rw'::regclass THEN
    INSERT INTO ddl_log VALUES (TG_TAG);
  END IF;
END $$`, "CREATE EVENT TRIGGER log_rw ON table_rewrite EXECUTE FUNCTION log_rw()", "ALTER EVENT TRIGGER log_rw ENABLE ALWAYS")
	before := e.shim.Stats()
	q := "ALTER TABLE rw ALTER COLUMN a TYPE bigint"
	_, err := c.Exec(t.Context(), q)
	wantRefused(t, q, err, "log_rw")
	execAll(t, c, "CREATE TEMP TABLE trw (a int)", "INSERT INTO trw VALUES (1)", "ALTER TABLE trw ALTER COLUMN a TYPE bigint")
	e.settle(t, before)
	local := queryOne[string](t, e.localDB, "SELECT count(*)::text FROM ddl_log")
	if peer := e.peerString(t, "SELECT count(*)::text FROM ddl_log"); peer != local {
		t.Fatalf("ddl_log rows: local %s, peer %s", local, peer)
	}
}

// TestEventTriggerAlwaysCTAS: CREATE TABLE ... AS a published table is recorded as the CREATE
// TABLE of its definition (tandem.ddl_ctas), which the peer runs: an event trigger of the
// user's made ENABLE ALWAYS WHEN TAG IN ('CREATE TABLE') did not fire here (tag CREATE TABLE
// AS), was not looked at, and fired in the peer's apply alone: 'table public.ddl_log has 0
// rows on the local database but 1 on the peer'. Refused.
func TestEventTriggerAlwaysCTAS(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	c := e.connect(t)
	logDDL(t, c, "CREATE EVENT TRIGGER log_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION log_ddl()",
		"ALTER EVENT TRIGGER log_ddl ENABLE ALWAYS")
	before := e.shim.Stats()
	for _, q := range []string{"CREATE TABLE c1 AS SELECT 1 AS id", "SELECT 1 AS id INTO c2"} {
		_, err := c.Exec(t.Context(), q)
		wantRefused(t, q, err, "log_ddl")
	}
	e.settle(t, before)
	local := queryOne[string](t, e.localDB, "SELECT count(*)::text FROM ddl_log")
	if peer := e.peerString(t, "SELECT count(*)::text FROM ddl_log"); peer != local {
		t.Fatalf("ddl_log rows: local %s, peer %s", local, peer)
	}
	e.sameOnBoth(t, "c1", "c2")
}

// logDDL runs, through c, the making of table ddl_log and event trigger function log_ddl(),
// which logs each command's tag there, then the statements more.
func logDDL(t *testing.T, c *pgx.Conn, more ...string) {
	t.Helper()
	execAll(t, c, append([]string{"CREATE TABLE ddl_log (tag text)", `CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ddl_log VALUES (TG_TAG);
END $$`}, more...)...)
}
