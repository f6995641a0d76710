package txshim

import "testing"

// TestDDLUnrecordByClient: a role with no rights on tandem.ddl takes back the record of its
// own transaction's DDL on a permanent table by calling tandem.ddl_unrecord itself.
func TestDDLUnrecordByClient(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	e.both(t, `CREATE ROLE app; GRANT CREATE ON SCHEMA public TO app`)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"BEGIN",
		"SET LOCAL ROLE app",
		"CREATE TABLE p (id int PRIMARY KEY)",
		"SELECT tandem.ddl_unrecord(g) FROM generate_series(1, 1000) g",
		"COMMIT",
	)
	e.settle(t, before)
}

// TestDDLUnrecordForgedTemp: tandem.ddl_temp, the DDL guard's note that a DROP dropped
// temporary objects only, is a setting any client may set itself; with it set, a call of
// tandem.ddl_unrecord from inside the client's own DDL on a temporary object (a DO block's
// CREATE TEMP TABLE … AS) took back the record of its DDL on a permanent table.
func TestDDLUnrecordForgedTemp(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	e.both(t, `CREATE ROLE app; GRANT CREATE ON SCHEMA public TO app`)
	before := e.shim.Stats()
	c := e.connect(t)
	execAll(t, c,
		"BEGIN",
		"SET LOCAL ROLE app",
		"CREATE TABLE p (id int PRIMARY KEY)",
		"SET LOCAL tandem.ddl_temp = 'yes'",
		"DO $$ BEGIN CREATE TEMP TABLE x AS SELECT g, tandem.ddl_unrecord(g)::text AS u FROM generate_series(1, 1000) g; END $$",
		"COMMIT",
	)
	e.settle(t, before)
	if got := e.peerString(t, "SELECT coalesce(to_regclass('p')::text, 'missing')"); got != "p" {
		t.Fatalf("p on the peer: %q", got)
	}
}
