package txshim

import "testing"

// TestApplyCompositeKeyDomainFieldNotValid: a key of a composite type with a field of a domain
// type (or of a domain over one) was read in that composite type, CAST($n AS typ), which reads
// each field in its type and so checks the domain's constraints: a key value the row holds that
// a constraint added NOT VALID refuses made the peer refuse every update and delete of that
// row.
func TestApplyCompositeKeyDomainFieldNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posk AS int`,
		`CREATE TYPE pk AS (a posk, b text)`,
		`CREATE DOMAIN dpk AS pk`,
		`CREATE TABLE kf (k pk PRIMARY KEY, v int)`,
		`CREATE TABLE kd (id int, k dpk, v int, PRIMARY KEY (id, k))`,
		`INSERT INTO kf VALUES (ROW(-1, 'a'), 0), (ROW(-2, 'b'), 0), (ROW(3, 'c'), 0)`,
		`INSERT INTO kd VALUES (1, ROW(-1, 'a'), 0), (1, ROW(-2, 'b'), 0)`,
		`ALTER DOMAIN posk ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kf SET v = 1 WHERE (k).a = -1`,
		`DELETE FROM kf WHERE (k).a = -2`,
		`UPDATE kf SET v = 1 WHERE (k).a = 3`,
		`UPDATE kd SET v = 1 WHERE (k).a = -1`,
		`DELETE FROM kd WHERE (k).a = -2`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kf WHERE v = 1`); n != 2 {
		t.Errorf("the peer's kf has %d rows updated, want 2", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
