package txshim

import "testing"

// TestApplyNestedDomainNotValid: columns of a domain over a domain (an array of one, a domain
// over an array of a domain) whose inner domain got a constraint NOT VALID that a row's value
// does not meet are updated and deleted on the peer as on the local database — by key leaving
// the column as it was, and as REPLICA IDENTITY FULL rows. The peer read the values in the
// inner domain (one level down from the column's), checking its constraint, and refused them.
func TestApplyNestedDomainNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN pos AS int`, `CREATE DOMAIN pos2 AS pos`, `CREATE DOMAIN posa AS pos[]`,
		`CREATE TABLE kn (id int PRIMARY KEY, x pos2, xs pos2[], xa posa, y int)`,
		`INSERT INTO kn VALUES (1, -1, '{-1}', '{-1}', 0)`,
		`CREATE TABLE fn (x pos2, xs pos2[], xa posa, y int)`, `ALTER TABLE fn REPLICA IDENTITY FULL`,
		`INSERT INTO fn VALUES (-1, '{-1}', '{-1}', 0), (-2, '{-2}', '{-2}', 0)`,
		`ALTER DOMAIN pos ADD CONSTRAINT pos_check CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.kn SET y = 1 WHERE id = 1`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE public.fn SET y = 1 WHERE x = -1`, `DELETE FROM public.fn WHERE x = -2`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
