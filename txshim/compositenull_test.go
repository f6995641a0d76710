package txshim

import "testing"

// TestApplyCompositeDomainNullKept: a column of a domain over a composite with a field of a
// domain type is NULL, and the domain refuses NULL by a constraint added NOT VALID (the way to
// make a domain NOT NULL without checking the rows there): an update by key that leaves the
// column NULL leaves it so on the peer. kept compared such a column's NULL, spelled ” by
// format, with the parameter's text, NULL, which is never equal: the NULL was written again,
// cast to the domain, and refused.
func TestApplyCompositeDomainNullKept(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posn AS int`,
		`CREATE TYPE pn AS (a posn)`,
		`CREATE DOMAIN dpn AS pn`,
		`CREATE TABLE cnn (id int PRIMARY KEY, d dpn, y int)`,
		`INSERT INTO cnn VALUES (1, NULL, 0), (2, NULL, 0)`,
		`ALTER DOMAIN dpn ADD CHECK (VALUE IS NOT NULL) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.cnn SET y = 1 WHERE id = 1`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
