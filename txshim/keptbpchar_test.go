package txshim

import (
	"testing"
)

// TestApplyKeyedDomainBpcharSpaces: an update by key that changes a column of a domain over
// bpchar only by its trailing blanks writes the new value on the peer too.
func TestApplyKeyedDomainBpcharSpaces(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN code AS bpchar`,
		`CREATE TABLE kb (id int PRIMARY KEY, c code, y int)`,
		`INSERT INTO kb VALUES (1, 'a', 0)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.kb SET c = 'a  ' WHERE id = 1`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
