package txshim

import (
	"context"
	"testing"
)

// TestTempTableGrant: GRANT and REVOKE on a temporary table: pg_event_trigger_ddl_commands()
// gives a grant no schema and no object, so the DDL guard kept its record, and the peer, which
// lacks the table, refused it (42P01) and stopped shipping. One on a permanent table (or its
// column) still ships, in a transaction with temporary tables too.
func TestTempTableGrant(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	e.both(t, `CREATE ROLE app`)
	admin := e.connect(t)
	if _, err := admin.Exec(ctx, `CREATE TABLE rows (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"CREATE TEMP TABLE tt (a int)",
		"GRANT SELECT ON tt TO app",
		"REVOKE SELECT ON tt FROM app",
		"GRANT SELECT ON rows TO app",
		"BEGIN; CREATE TEMP TABLE t3 (a int); GRANT SELECT ON t3 TO app; GRANT UPDATE (id) ON rows TO app; COMMIT",
		"INSERT INTO rows VALUES (1)",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1" {
		t.Fatalf("rows on the peer: %q, want 1", got)
	}
	if got := e.peerString(t, "SELECT has_column_privilege('app', 'rows', 'id', 'UPDATE')::text"); got != "true" {
		t.Fatalf("app's UPDATE on rows.id on the peer: %s", got)
	}
	if got := e.peerString(t, "SELECT has_table_privilege('app', 'rows', 'SELECT')::text"); got != "true" {
		t.Fatalf("app's SELECT on rows on the peer: %s", got)
	}
}
