package txshim

import "testing"

// TestApplyArrayOfDomainOverArray: a column of an array of a domain over an array type (ia[],
// ia over int[]), or of a domain over such an array, whose base type has no array type to read
// the column in without the domain, is read in its own type: its updates by key and a REPLICA
// IDENTITY FULL table's updates are applied, not refused for a CAST to no type at all.
func TestApplyArrayOfDomainOverArray(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN ia AS int[]`, `CREATE DOMAIN dia AS ia[]`,
		`CREATE TABLE aa (id int PRIMARY KEY, v ia[], d dia, y int)`,
		`CREATE TABLE af (v ia[], d dia, y int)`, `ALTER TABLE af REPLICA IDENTITY FULL`,
		`INSERT INTO aa VALUES (1, ARRAY['{1,2}'::ia, '{3}'::ia], ARRAY['{4}'::ia], 0)`,
		`INSERT INTO af VALUES (ARRAY['{1,2}'::ia, '{3}'::ia], ARRAY['{4}'::ia], 0)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.aa SET y = 1 WHERE id = 1`, `UPDATE public.af SET y = 1`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `DELETE FROM public.af`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
