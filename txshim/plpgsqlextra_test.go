package txshim

import "testing"

// TestFidelityPlpgsqlExtraErrors: plpgsql.extra_errors turns PL/pgSQL's extra checks into
// errors when CREATE FUNCTION validates a body (a variable that shadows a parameter, say). A
// database whose default turns them on (ALTER DATABASE … SET, on both sites), a session that
// turned them off for one function: its CREATE FUNCTION through the shim ran on the peer under
// the database's default, which refused it, and the client's commit was rolled back.
func TestFidelityPlpgsqlExtraErrors(t *testing.T) {
	t.Parallel()
	const strict = `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plpgsql.extra_errors = ''shadowed_variables''', current_database()); END $$`
	p, sh, shim := startShipPair(t, nil, Options{}, strict)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, nil,
		`SET plpgsql.extra_errors = 'none'`,
		`CREATE FUNCTION shadow(n int) RETURNS int LANGUAGE plpgsql AS $$ DECLARE n int := 2; BEGIN RETURN n; END $$`,
		`RESET plpgsql.extra_errors`,
	)
	const q = `SELECT count(*) FROM pg_proc WHERE proname = 'shadow'`
	if l, r := queryOne[int](t, p.ldb, q), queryOne[int](t, p.pdb, q); l != r {
		t.Errorf("functions shadow: local %d, peer %d", l, r)
	}
}
