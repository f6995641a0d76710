package txshim

import "testing"

// TestApplyCompositeDomainFieldNotValid: a column of a composite type with a field of a domain
// (or of a domain over it, an array of it, a range over a domain) holds a value that a
// constraint of that domain added NOT VALID refuses: an update by key that leaves the column
// as it is leaves it so on the peer too (kept), where the value read again in the column's type
// was refused as the domain's; one that changes it writes it.
func TestApplyCompositeDomainFieldNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posc AS int`,
		`CREATE TYPE pc AS (a posc)`,
		`CREATE DOMAIN dpc AS pc`,
		`CREATE TYPE posr AS RANGE (subtype = posc)`,
		`CREATE TABLE cn (id int PRIMARY KEY, r pc, d dpc, ra pc[], g posr, y int)`,
		`INSERT INTO cn VALUES (1, ROW(-1), ROW(-1), ARRAY[ROW(-1)::pc], '[-2,-1)', 0), (2, ROW(-1), ROW(-1), ARRAY[ROW(-1)::pc], '[-2,-1)', 0)`,
		`ALTER DOMAIN posc ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.cn SET y = 1 WHERE id = 1`,
		`UPDATE public.cn SET r = ROW(5), d = NULL, ra = ARRAY[ROW(6)::pc], g = '[1,2)' WHERE id = 2`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM cn WHERE id = 2 AND (r).a = 5 AND d IS NULL AND g = '[1,2)'`); n != 1 {
		t.Errorf("the peer's row 2 is not as updated")
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
