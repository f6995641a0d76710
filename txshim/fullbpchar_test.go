package txshim

import "testing"

// TestFullIdentityBpcharSpaces: of two REPLICA IDENTITY FULL rows equal under bpchar's equality
// but for trailing blanks ('a' and 'a  '), the peer changes the one the local database did.
func TestFullIdentityBpcharSpaces(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE fb (c bpchar, n int)`, `ALTER TABLE fb REPLICA IDENTITY FULL`,
		`INSERT INTO fb VALUES ('a', 0), ('a  ', 0), ('b', 0), ('b  ', 0)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `DELETE FROM public.fb WHERE octet_length(c) = 3 AND c = 'a'`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE public.fb SET n = 1 WHERE octet_length(c) = 3 AND c = 'b'`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
