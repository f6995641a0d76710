package txshim

import "testing"

// TestApplyFullRowDomainNotValid: a REPLICA IDENTITY FULL row holding a value that a domain
// constraint added NOT VALID refuses is updated and deleted on the peer as on the local
// database: the peer read the old values in the domain (checking the constraint) and set
// unchanged columns again, and refused both as a divergence.
func TestApplyFullRowDomainNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN pos AS int`,
		`CREATE TABLE fd (x pos, y int)`, `ALTER TABLE fd REPLICA IDENTITY FULL`,
		`INSERT INTO fd VALUES (-1, 0), (-2, 0), (3, 0)`,
		`ALTER DOMAIN pos ADD CONSTRAINT pos_check CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `DELETE FROM public.fd WHERE x = -2`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE public.fd SET y = 1`, `UPDATE public.fd SET y = y`)
	dualCommit(t, p, s, gidFor("a", 1, 3), `UPDATE public.fd SET x = 4 WHERE x = 3`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
