package txshim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// sameOnBoth fails t unless each relation named is on both databases or on neither.
func (e *accEnv) sameOnBoth(t *testing.T, rels ...string) {
	t.Helper()
	for _, r := range rels {
		local := queryOne[string](t, e.localDB, "SELECT coalesce(to_regclass($1)::text, 'missing')", r)
		if peer := e.peerString(t, "SELECT coalesce(to_regclass($1)::text, 'missing')", r); peer != local {
			t.Errorf("%s: local %q, peer %q", r, local, peer)
		}
	}
}

// wantRefused fails t unless err is SQLSTATE 0A000 with a message naming each of names.
func wantRefused(t *testing.T, q string, err error, names ...string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Errorf("%s: err = %v, want 0A000", q, err)
		return
	}
	t.Logf("%s: %s", q, pe.Message)
	for _, n := range names {
		if !strings.Contains(pe.Message, n) {
			t.Errorf("%s: message %q does not name %s", q, pe.Message, n)
		}
	}
}

// TestNestedDDLEventTrigger: an event trigger of the user's that makes a permanent table when a
// statement the shim records runs. The guard let its DDL through under the statement's mark,
// as if the peer's run of the statement made it too; but the peer's apply runs with
// session_replication_role = replica, where such a trigger does not fire: t_audit was made on
// the local database only. One made ENABLE ALWAYS fires in both, and its rows were written on
// the peer twice (its own and the shipped ones). Refused (0A000) before anything commits.
func TestNestedDDLEventTrigger(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	c := e.connect(t)
	execAll(t, c, `CREATE FUNCTION audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('t_audit') IS NULL THEN
    CREATE TABLE t_audit (id serial PRIMARY KEY, tag text);
  END IF;
  IF TG_TAG <> 'CREATE TABLE' OR NOT EXISTS (SELECT FROM t_audit) THEN
    INSERT INTO t_audit (tag) VALUES (TG_TAG);
  END IF;
END $$`)
	before := e.shim.Stats()
	for _, s := range []struct{ setup, q string }{
		{"CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION audit_ddl()", "CREATE TABLE t1 (id int PRIMARY KEY)"},
		{"ALTER EVENT TRIGGER audit_ddl ENABLE ALWAYS", "CREATE TABLE t2 (id int PRIMARY KEY)"},
		{"DROP EVENT TRIGGER audit_ddl", ""},
		{"CREATE EVENT TRIGGER audit_ddl ON ddl_command_start WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION audit_ddl()", ""},
		{"CREATE TABLE t3 (id int PRIMARY KEY)", "ALTER TABLE t3 ADD COLUMN v int"},
	} {
		execAll(t, c, s.setup)
		if s.q == "" {
			continue
		}
		_, err := c.Exec(ctx, s.q)
		wantRefused(t, s.q, err, "CREATE TABLE", "event trigger audit_ddl")
		e.settle(t, before)
		e.sameOnBoth(t, "t_audit", "t1", "t2", "t3")
	}
	e.settle(t, before)
	if got := e.peerString(t, "SELECT count(*)::text FROM information_schema.columns WHERE table_name = 't3' AND column_name = 'v'"); got != "0" {
		t.Errorf("t3.v on the peer: %s", got)
	}
}

// TestNestedDDLInCTAS: CREATE TABLE ... AS and SELECT ... INTO a published table whose query
// calls a function that makes a permanent table. The peer no longer runs the query (the record
// is rewritten into the table's definition, tandem.ddl_ctas), so the function's table was made
// on the local database only. Refused (0A000); a function making a temporary table still runs.
func TestNestedDDLInCTAS(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	c := e.connect(t)
	execAll(t, c, `CREATE FUNCTION mk_side() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TABLE IF NOT EXISTS side (a int);
  RETURN 1;
END $$`, `CREATE FUNCTION drop_side() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  DROP TABLE IF EXISTS side0;
  RETURN 1;
END $$`, "CREATE TABLE side0 (a int)")
	before := e.shim.Stats()
	for _, s := range []struct{ q, fn string }{
		{"CREATE TABLE c1 AS SELECT mk_side() AS a", "mk_side"},
		{"SELECT mk_side() AS a INTO c2", "mk_side"},
		{"CREATE TABLE c3 AS SELECT drop_side() AS a", "drop_side"},
	} {
		_, err := c.Exec(ctx, s.q)
		wantRefused(t, s.q, err, s.fn)
	}
	e.settle(t, before)
	e.sameOnBoth(t, "side", "side0", "c1", "c2", "c3")
}

// TestNestedDDLEventTriggerInExtension: the commands of an extension's script run nested in
// CREATE EXTENSION, which the peer runs too; an event trigger of the user's that fires for one
// of them and makes a permanent table does not fire in the peer's apply: t_audit was made on
// the local database only. Refused; the extension alone still ships.
func TestNestedDDLEventTriggerInExtension(t *testing.T) {
	t.Parallel()
	dir := "/usr/share/postgresql/15/extension"
	ext := fmt.Sprintf("tandem_nest_ext_%d", os.Getpid())
	for f, body := range map[string]string{
		ext + ".control":  "default_version = '1.0'\nrelocatable = false\nschema = public\n",
		ext + "--1.0.sql": "CREATE TABLE nest_codes (code int PRIMARY KEY);\nINSERT INTO nest_codes VALUES (1);\n",
	} {
		path := filepath.Join(dir, f)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Skipf("cannot install a test extension in %s: %v", dir, err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	e := startAccEnv(t)
	ctx := context.Background()
	c := e.connect(t)
	execAll(t, c, `CREATE FUNCTION audit_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  IF to_regclass('t_audit') IS NULL THEN
    CREATE TABLE t_audit (tag text);
  END IF;
END $$`, "CREATE EVENT TRIGGER audit_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION audit_ddl()")
	before := e.shim.Stats()
	q := "CREATE EXTENSION " + ext
	_, err := c.Exec(ctx, q)
	wantRefused(t, q, err, "CREATE TABLE", "audit_ddl")
	e.settle(t, before)
	e.sameOnBoth(t, "t_audit", "nest_codes")
	execAll(t, c, "DROP EVENT TRIGGER audit_ddl", q)
	e.settle(t, before)
	e.sameOnBoth(t, "t_audit", "nest_codes")
}
