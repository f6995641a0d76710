package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestTempCTAS: CREATE TABLE … AS and SELECT … INTO a permanent table from a temporary one
// (a common ETL pattern), or from a prepared statement (… AS EXECUTE). The peer ran the
// recorded statement, whose query reads a table it lacks (42P01), and shipping stopped. The
// peer must end with the same table and rows.
func TestTempCTAS(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE stage (a int, b text COLLATE \"C\", n numeric(10,2))",
		"INSERT INTO stage SELECT x, 'v' || x, x / 3.0 FROM generate_series(1, 5) x",
		"CREATE TABLE perm1 AS SELECT a, b, n, random() AS r, clock_timestamp() AS at FROM stage",
		"SELECT a AS id, b INTO perm2 FROM stage WHERE a > 2",
		"BEGIN; CREATE TEMP TABLE s2 AS SELECT 7 AS k; CREATE TABLE perm3 (c1, c2) AS SELECT k, k * 2 FROM s2; COMMIT",
		"CREATE TABLE perm4 AS SELECT * FROM stage WITH NO DATA",
		"PREPARE staged AS SELECT a, b FROM stage",
		"CREATE TABLE perm5 AS EXECUTE staged",
	)
	e.settle(t, before)
	for _, tb := range []string{"perm1", "perm2", "perm3", "perm4", "perm5"} {
		if got := e.peerString(t, "SELECT coalesce(to_regclass($1)::text, 'missing')", tb); got != tb {
			t.Errorf("%s on the peer: %q", tb, got)
		}
	}
	if got := e.peerString(t, "SELECT count(*)::text FROM perm1"); got != "5" {
		t.Fatalf("perm1 rows on the peer: %s", got)
	}
	const cols = `SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attcollation::regcollation::text, ', ' ORDER BY attnum)
FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0`
	for _, tb := range []string{"perm1", "perm2", "perm3", "perm4", "perm5"} {
		var local string
		if err := e.localDB.QueryRow(cols, tb).Scan(&local); err != nil {
			t.Fatal(err)
		}
		if peer := e.peerString(t, cols, tb); peer != local {
			t.Errorf("%s's columns on the peer: %s; local: %s", tb, peer, local)
		}
	}
}

// TestTempGrantAfterPermanent: GRANT on a temporary table after a permanent change in the same
// transaction: the guard took the grant for one on a permanent table (the transaction had
// changed a permanent table's catalog rows), kept its record, and the peer refused it (42P01).
func TestTempGrantAfterPermanent(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	e.both(t, `CREATE ROLE app`)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"BEGIN; CREATE TABLE p1 (id int PRIMARY KEY); CREATE TEMP TABLE tt (a int); GRANT SELECT ON tt TO app; COMMIT",
		"BEGIN; ALTER TABLE p1 ADD COLUMN v int; GRANT SELECT (a) ON tt TO app; GRANT INSERT ON p1 TO app; REVOKE SELECT ON tt FROM app; COMMIT",
		"INSERT INTO p1 VALUES (1, 2)",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT has_table_privilege('app', 'p1', 'INSERT')::text"); got != "true" {
		t.Fatalf("app's INSERT on p1 on the peer: %s", got)
	}
}

// TestTempMixedDrop: DROP of a temporary and a permanent object in one statement: its record
// was kept (a permanent object dropped), and the peer, which lacks the temporary one, refused
// it (42P01) and stopped shipping. The peer drops the permanent ones.
func TestTempMixedDrop(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	admin := e.connect(t)
	execAll(t, admin,
		"CREATE TABLE perm (id int PRIMARY KEY)",
		"CREATE TABLE perm2 (id int PRIMARY KEY)",
		"CREATE VIEW perm2_v AS SELECT id FROM perm2",
		"CREATE SEQUENCE pseq",
		"CREATE TABLE rows (id int PRIMARY KEY)",
	)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE tt (a int)",
		"CREATE TEMP TABLE tt2 (a int)",
		"CREATE TEMP SEQUENCE tseq",
		"DROP TABLE tt, perm",
		"BEGIN; INSERT INTO rows VALUES (1); DROP TABLE perm2, tt2 CASCADE; COMMIT",
		"DROP SEQUENCE pseq, tseq",
		"INSERT INTO rows VALUES (2)",
	)
	e.settle(t, before)
	for _, name := range []string{"perm", "perm2", "perm2_v", "pseq"} {
		if got := e.peerString(t, "SELECT coalesce(to_regclass($1)::text, 'gone')", name); got != "gone" {
			t.Errorf("%s on the peer: %s, want gone", name, got)
		}
	}
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1,2" {
		t.Fatalf("rows on the peer: %q, want 1,2", got)
	}
}

// TestTempDependency: DDL through the shim that makes a permanent object depend on a
// temporary one — a default of nextval on a temporary sequence, a trigger running a function
// in pg_temp — was recorded, and the peer, which lacks the temporary object, refused it
// (42P01) and stopped shipping (and the end of the session would drop the default on the local
// database alone). It is refused (0A000) before anything commits; shipping goes on.
func TestTempDependency(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE perm2 (id int PRIMARY KEY)")
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP SEQUENCE ts",
		`CREATE FUNCTION pg_temp.f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
	)
	for _, q := range []string{
		"CREATE TABLE perm (id int PRIMARY KEY DEFAULT nextval('ts'))",
		"ALTER TABLE perm2 ALTER COLUMN id SET DEFAULT nextval('ts')",
		"BEGIN; INSERT INTO perm2 VALUES (7); CREATE TRIGGER tr BEFORE INSERT ON perm2 FOR EACH ROW EXECUTE FUNCTION pg_temp.f(); COMMIT",
	} {
		_, err := c.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
			t.Fatalf("%s: %v, want 0A000", q, err)
		}
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
	}
	execAll(t, c,
		"CREATE TEMP TABLE tt (id int DEFAULT nextval('ts'), note text)",
		"BEGIN; CREATE TEMP TABLE tt2 (note text); CREATE INDEX ON tt2 (note); CREATE TABLE perm4 (id int PRIMARY KEY, note text); COMMIT",
		"CREATE TABLE perm3 (id int PRIMARY KEY DEFAULT 1)",
		"INSERT INTO perm2 VALUES (1)",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM perm2"); got != "1" {
		t.Fatalf("perm2 on the peer: %q, want 1", got)
	}
}

// TestTempEventTriggerBeforeGuard: an event trigger of the database's own on ddl_command_start,
// whose name sorts before tandem_ddl_guard_start, that makes a temporary table: the guard took
// that command, run before its start of the statement's, for the statement's own, and took
// back the record of the statement (ALTER TABLE on a permanent table): the peer never got it,
// and refused the next insert (42703), stopping shipping.
func TestTempEventTriggerBeforeGuard(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	// The function on both databases (verify compares their functions), its event trigger on
	// the local one alone.
	for _, db := range []*sql.DB{e.localDB, e.peerDB} {
		if _, err := db.Exec(`CREATE FUNCTION audit_start() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_TAG = 'ALTER TABLE' THEN
    CREATE TEMP TABLE IF NOT EXISTS ddl_audit (tag text);
  END IF;
END $$`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.localDB.Exec(`CREATE EVENT TRIGGER audit_start ON ddl_command_start EXECUTE FUNCTION audit_start()`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	admin := e.connect(t)
	if _, err := admin.Exec(ctx, `CREATE TABLE perm (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c, "ALTER TABLE perm ADD COLUMN b int", "INSERT INTO perm VALUES (1, 2)")
	e.settle(t, before)
	if got := e.peerString(t, "SELECT count(*)::text FROM information_schema.columns WHERE table_name = 'perm' AND column_name = 'b'"); got != "1" {
		t.Fatalf("perm.b on the peer: %s", got)
	}
}

// TestTempCTASIfNotExists: CREATE TABLE IF NOT EXISTS … AS from a temporary table, the table
// there already (an idempotent load step run again): it does nothing, yet its record was
// kept, and the peer, which parses the query before it finds the table there, refused it
// (42P01) and stopped shipping.
func TestTempCTASIfNotExists(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE stage (a int)",
		"INSERT INTO stage VALUES (1), (2)",
		"CREATE TABLE IF NOT EXISTS loaded AS SELECT a FROM stage",
		"CREATE TABLE IF NOT EXISTS loaded AS SELECT a FROM stage",
		"BEGIN; INSERT INTO loaded VALUES (3); CREATE TABLE IF NOT EXISTS loaded AS SELECT a FROM stage; INSERT INTO loaded VALUES (4); COMMIT",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT string_agg(a::text, ',' ORDER BY a) FROM loaded"); got != "1,2,3,4" {
		t.Fatalf("loaded on the peer: %q, want 1,2,3,4", got)
	}
}

// TestTempMixedGrant: GRANT or REVOKE on a temporary and a permanent table in one statement:
// its record was kept, and the peer, which lacks the temporary table, refused it (42P01) and
// stopped shipping. It is refused (0A000) before anything commits.
func TestTempMixedGrant(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	e.both(t, `CREATE ROLE app`)
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE perm (id int PRIMARY KEY)")
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c, "CREATE TEMP TABLE tt (a int)")
	for _, q := range []string{"GRANT SELECT ON tt, perm TO app", "REVOKE SELECT ON perm, tt FROM app"} {
		_, err := c.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
			t.Fatalf("%s: %v, want 0A000", q, err)
		}
	}
	execAll(t, c, "GRANT SELECT ON tt TO app", "GRANT SELECT ON perm TO app", "INSERT INTO perm VALUES (1)")
	e.settle(t, before)
	if got := e.peerString(t, "SELECT has_table_privilege('app', 'perm', 'SELECT')::text"); got != "true" {
		t.Fatalf("app's SELECT on perm on the peer: %s", got)
	}
}

// TestTempCTASUnlogged: CREATE UNLOGGED TABLE … AS from a temporary table (or a prepared
// statement). tandem_ddl_ctas rewrote the record of published tables only, so the peer ran
// the query, which reads a table it lacks (42P01), and shipping stopped. The peer makes the
// table empty: an UNLOGGED table's rows are never shipped.
func TestTempCTASUnlogged(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE stage (a int, n numeric(10,2))",
		"INSERT INTO stage VALUES (1, 1.5), (2, 2.5)",
		"CREATE UNLOGGED TABLE u1 AS SELECT a, n FROM stage",
		"PREPARE staged AS SELECT a FROM stage",
		"CREATE UNLOGGED TABLE u2 AS EXECUTE staged",
		"INSERT INTO rows VALUES (1)",
	)
	e.settle(t, before)
	for _, tb := range []string{"u1", "u2"} {
		if got := e.peerString(t, "SELECT coalesce((SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass($1)), 'missing')", tb); got != "u" {
			t.Errorf("%s on the peer: %s, want an unlogged table", tb, got)
		}
	}
}

// TestTempGrantConcurrentDDL: GRANT on a temporary table while another session, whose
// transaction began after this one's, committed DDL on permanent tables. The guard told the
// grant's own catalog rows by age(xmin) <= 0 and a command id past the greatest one at the
// grant's start: the other transaction's rows (a later xid, so of age below 0) counted too,
// their command ids raised that greatest one past the grant's own, the grant seemed to change
// no row, its record was kept, and the peer, which lacks the temporary table, refused it.
func TestTempGrantConcurrentDDL(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	e.both(t, `CREATE ROLE app`)
	before := e.shim.Stats()
	a, b := e.connect(t), e.connect(t)
	execAll(t, a, "BEGIN", "CREATE TEMP TABLE tt (a int)")
	stmts := []string{"BEGIN"}
	for i := range 12 {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE b%d (id int PRIMARY KEY, c1 int, c2 int, c3 int)", i))
	}
	execAll(t, b, append(stmts, "COMMIT")...)
	execAll(t, a, "GRANT SELECT ON tt TO app", "COMMIT")
	execAll(t, b, "INSERT INTO b0 VALUES (1, 2, 3, 4)")
	e.settle(t, before)
}

// TestTempDDLNestedPermanent: DDL on a temporary table that runs a function doing DDL on
// permanent objects (a volatile default evaluated for the table's rows). The guard took the
// statement for one on temporary objects only and took its record back: the peer never made
// the function's table and refused the next insert into it (42P01), stopping shipping. The
// peer can run neither, so it is refused (0A000) before anything commits.
func TestTempDDLNestedPermanent(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		`CREATE FUNCTION mk() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE TABLE IF NOT EXISTS side (x int PRIMARY KEY); RETURN 1; END $$`,
		`CREATE FUNCTION mkt() RETURNS int LANGUAGE plpgsql AS $$ BEGIN CREATE TEMP TABLE IF NOT EXISTS tside (x int); RETURN 1; END $$`,
		"CREATE TEMP TABLE tt (a int)",
		"INSERT INTO tt VALUES (1)",
	)
	_, err := c.Exec(ctx, "ALTER TABLE tt ADD COLUMN c int DEFAULT mk()")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		t.Fatalf("ALTER TABLE tt ADD COLUMN c int DEFAULT mk(): %v, want 0A000", err)
	}
	execAll(t, c,
		"ALTER TABLE tt ADD COLUMN d int DEFAULT mkt()",
		"CREATE TABLE side (x int PRIMARY KEY)",
		"INSERT INTO side VALUES (1)",
	)
	e.settle(t, before)
}

// TestTempDependencyCast: CREATE CAST from a temporary type, a cast (in no schema) depending
// on a temporary object. The guard left out a dependent object whose names began with
// pg_temp, meaning one in a temporary schema or of a temporary table, but a cast's names begin
// with its source type's: the statement was recorded, and the peer refused it ('schema
// "pg_temp" does not exist', 3F000), stopping shipping. It is refused (0A000) as any DDL making
// a permanent object depend on a temporary one.
func TestTempDependencyCast(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c, "CREATE TYPE pg_temp.t AS ENUM ('x')")
	_, err := c.Exec(ctx, "CREATE CAST (pg_temp.t AS int) WITH INOUT")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		t.Fatalf("CREATE CAST (pg_temp.t AS int) WITH INOUT: %v, want 0A000", err)
	}
	execAll(t, c, "INSERT INTO rows VALUES (1)")
	e.settle(t, before)
}
