package txshim

import "testing"

// TestFidelityTransformNullEquals: transform_null_equals changes what a DDL statement's
// expressions mean (x = NULL read as x IS NULL) as it is parsed: a generated column's
// expression, which the peer computes for itself, must mean on the peer what it meant in the
// session that sent the statement.
func TestFidelityTransformNullEquals(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{})
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"tn"},
		`SET transform_null_equals = on`,
		`CREATE TABLE tn (id int PRIMARY KEY, x int, g int GENERATED ALWAYS AS (CASE WHEN x = NULL THEN 1 ELSE 0 END) STORED)`,
		`INSERT INTO tn VALUES (1, NULL), (2, 2)`,
		`RESET transform_null_equals`,
		`INSERT INTO tn VALUES (3, NULL)`,
	)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tn WHERE g = 1`); n != 2 {
		t.Errorf("peer: %d rows of tn with g = 1, want 2", n)
	}
}
