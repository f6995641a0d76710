package txshim

import "testing"

// TestDDLUnrecordByClient: a role with no rights on tandem.ddl takes back the record of its
// own transaction's DDL on a permanent table by calling tandem.ddl_unrecord itself.
func TestDDLUnrecordByClient(t *testing.T) {
	t.Parallel()
	unrecordAsApp(t, "SELECT tandem.ddl_unrecord(g) FROM generate_series(1, 1000) g")
}

// TestDDLUnrecordForgedTemp: tandem.ddl_temp, the DDL guard's note that a DROP dropped
// temporary objects only, is a setting any client may set itself; with it set, a call of
// tandem.ddl_unrecord from inside the client's own DDL on a temporary object (a DO block's
// CREATE TEMP TABLE … AS) took back the record of its DDL on a permanent table.
func TestDDLUnrecordForgedTemp(t *testing.T) {
	t.Parallel()
	unrecordAsApp(t,
		"SET LOCAL tandem.ddl_temp = 'yes'",
		"DO $$ BEGIN CREATE TEMP TABLE x AS SELECT g, tandem.ddl_unrecord(g)::text AS u FROM generate_series(1, 1000) g; END $$",
	)
}

// unrecordAsApp runs, through the shim as role app, a transaction that creates table p and then
// runs stmts (each trying to take back p's record), and checks that the peer got p all the same.
func unrecordAsApp(t *testing.T, stmts ...string) {
	e := startAccEnv(t)
	e.both(t, `CREATE ROLE app; GRANT CREATE ON SCHEMA public TO app`)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c, append(append([]string{"BEGIN", "SET LOCAL ROLE app", "CREATE TABLE p (id int PRIMARY KEY)"}, stmts...), "COMMIT")...)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT coalesce(to_regclass('p')::text, 'missing')"); got != "p" {
		t.Fatalf("p on the peer: %q", got)
	}
}
