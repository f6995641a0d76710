package txshim

import "testing"

// TestFidelityCheckFunctionBodies: a session with check_function_bodies off (as pg_dump's
// output sets it, and migration tools that create functions before the tables they read) makes
// a function whose body names a table made after it. Its CREATE FUNCTION must run on the peer
// under that setting too: under the apply session's default (on) the peer refused it, and the
// transaction was taken for a divergence.
func TestFidelityCheckFunctionBodies(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{})
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"later"},
		`SET check_function_bodies = off`,
		`CREATE FUNCTION later_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM later'`,
		`CREATE TABLE later (id int PRIMARY KEY)`,
		`RESET check_function_bodies`,
		`INSERT INTO later VALUES (1), (2)`,
	)
	if n := queryOne[int](t, p.pdb, `SELECT later_count()`); n != 2 {
		t.Errorf("peer: later_count() = %d, want 2", n)
	}
}
