package txshim

import "testing"

// TestFullIdentityInnerDomainNotValid: a REPLICA IDENTITY FULL row holds a value with a domain
// inside — an array of a domain over an array type (ia[], ia over int[]), a composite with a
// field of a domain type — that a constraint of that domain added NOT VALID refuses: the peer
// updates and deletes it as the local database did, as it does a row of an array of a plain
// domain (TestApplyDomainArrayNotValid), rather than refuse the row's old value read in its type.
func TestFullIdentityInnerDomainNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN ian AS int[]`,
		`CREATE DOMAIN posf AS int`,
		`CREATE TYPE pf AS (a posf, at timestamptz)`,
		`CREATE TABLE afn (v ian[], c pf, y int)`, `ALTER TABLE afn REPLICA IDENTITY FULL`,
		`INSERT INTO afn VALUES (ARRAY['{-1}'::ian], ROW(-1, '2024-01-02 03:04:05+00'), 0), (ARRAY['{-2}'::ian], ROW(-2, NULL), 0), (ARRAY['{-3}'::ian], ROW(-3, NULL), 0)`,
		`ALTER DOMAIN ian ADD CHECK (VALUE[1] > 0) NOT VALID`,
		`ALTER DOMAIN posf ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.afn SET y = 1 WHERE (v[1])[1] = -1`, `DELETE FROM public.afn WHERE (v[1])[1] = -2`,
		`UPDATE public.afn SET c = ROW(3, NULL) WHERE (v[1])[1] = -3`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
