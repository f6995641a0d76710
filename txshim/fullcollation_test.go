package txshim

import "testing"

// TestFullIdentityNondeterministicCollation: under a nondeterministic collation (case-blind
// here) 'abc' and 'ABC' are equal, yet they are two rows. The peer finds a REPLICA IDENTITY
// FULL table's row by its old values and, among rows equal to them, takes the one spelled as
// the sent row first: that spelling must be compared byte for byte, or the peer changes the
// other row.
func TestFullIdentityNondeterministicCollation(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
		`CREATE TABLE fc (c text COLLATE ci, v varchar(10) COLLATE ci, n int)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"fc"},
		`INSERT INTO fc VALUES ('ABC', 'X', 0), ('abc', 'X', 0), ('q', 'AB', 0), ('q', 'ab', 0)`,
		`UPDATE fc SET n = 1 WHERE c = 'abc' COLLATE "C"`,
		`UPDATE fc SET n = 2 WHERE v = 'ab' COLLATE "C"`,
		`DELETE FROM fc WHERE c = 'abc' COLLATE "C"`,
	)
}

// TestFullIdentityNondeterministicCollationArray: an array of a nondeterministically collated
// type has no equality of its own for a full row (matchRow compares it as text), and its text
// keeps the column's collation: '{abc}' and '{ABC}' compared equal, and an UPDATE or DELETE of
// the '{abc}' row changed the '{ABC}' row on the peer.
func TestFullIdentityNondeterministicCollationArray(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
		`CREATE DOMAIN cia AS text[] COLLATE ci`,
		`CREATE TABLE fca (a text[] COLLATE ci, d cia, n int)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"fca"},
		`INSERT INTO fca VALUES ('{ABC}', '{X}', 0), ('{abc}', '{X}', 0), ('{q}', '{AB}', 0), ('{q}', '{ab}', 0)`,
		`UPDATE fca SET n = 1 WHERE a = '{abc}' COLLATE "C"`,
		`UPDATE fca SET n = 2 WHERE d = '{ab}' COLLATE "C"`,
		`DELETE FROM fca WHERE a = '{abc}' COLLATE "C"`,
	)
}
