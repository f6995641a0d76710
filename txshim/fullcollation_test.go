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

// TestApplyKeyIndexCollation: a REPLICA IDENTITY USING INDEX table whose index compares its
// column under another collation than the column's: 'abc' and 'ABC', equal under the column's
// nondeterministic collation, are two keys of the index (COLLATE "C"). The peer found the row by
// its key under the column's collation, matched both rows, and refused every update and delete
// of either as a divergence.
func TestApplyKeyIndexCollation(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
		`CREATE TABLE ic (k text COLLATE ci NOT NULL, n int)`,
		`CREATE UNIQUE INDEX ic_k ON ic (k COLLATE "C")`,
		`ALTER TABLE ic REPLICA IDENTITY USING INDEX ic_k`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"ic"},
		`INSERT INTO ic VALUES ('ABC', 0), ('abc', 0), ('Q', 0), ('q', 0)`,
		`UPDATE ic SET n = 1 WHERE k = 'abc' COLLATE "C"`,
		`UPDATE ic SET k = 'abd' WHERE k = 'ABC' COLLATE "C"`,
		`DELETE FROM ic WHERE k = 'q' COLLATE "C"`,
	)
}
