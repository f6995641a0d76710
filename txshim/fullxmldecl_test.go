package txshim

import "testing"

// TestFullIdentityXMLDeclaration: a REPLICA IDENTITY FULL row whose xml value keeps an XML
// declaration on both databases (written there before Tandem, or by DDL's default) is found on
// the peer by the old value pgoutput sends, which xml's output function writes without that
// declaration.
func TestFullIdentityXMLDeclaration(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN dx AS xml`, `CREATE TABLE fx (x xml, n int, d dx)`, `ALTER TABLE fx REPLICA IDENTITY FULL`,
		`INSERT INTO fx VALUES ('<?xml version="1.0" encoding="UTF-8"?><a/>', 0, '<?xml version="1.0"?><d/>'), ('<?xml version="1.0"?>`+"\n"+`<b/>', 0, NULL), ('<c/>', 0, '<?xml version="1.0"?><d/>')`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.fx SET n = 1 WHERE x::text LIKE '%<a/>'`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `DELETE FROM public.fx WHERE x::text LIKE '%<b/>'`)
	dualCommit(t, p, s, gidFor("a", 1, 3), `UPDATE public.fx SET n = 2 WHERE x::text = '<c/>'`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
