package txshim

import (
	"strings"
	"testing"
)

// TestEventTriggerAlwaysRows: an event trigger of the user's made ENABLE ALWAYS that writes a
// row (an audit log) when a statement the shim records runs: it fires in the peer's apply too,
// which runs the statement, and the peer got the row twice — its trigger's and the shipped one
// (one ENABLE REPLICA wrote it on the peer alone). Refused (0A000) before anything commits.
func TestEventTriggerAlwaysRows(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	c := e.connect(t)
	execAll(t, c, "CREATE TABLE ddl_log (tag text)", `CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ddl_log VALUES (TG_TAG);
END $$`,
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
