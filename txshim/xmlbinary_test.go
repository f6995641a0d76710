package txshim

import "testing"

// TestFidelityXMLBinary: xmlbinary decides how xmlelement writes a bytea value (base64 or hex).
// DDL through the shim that computes such a value for the rows there — a default of a column
// added to a table that has rows, a conversion USING xmlelement — computed it on the peer
// under the apply session's setting, and the rows differed silently.
func TestFidelityXMLBinary(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE xb (id int PRIMARY KEY, b bytea)`,
		`INSERT INTO xb VALUES (1, '\x0102')`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"xb"},
		`SET xmlbinary = hex`,
		`ALTER TABLE xb ADD COLUMN c xml DEFAULT xmlelement(name a, '\x0102'::bytea)`,
		`ALTER TABLE xb ALTER COLUMN b TYPE xml USING xmlelement(name a, b)`,
		`RESET xmlbinary`,
		`INSERT INTO xb (id, b) VALUES (2, '<b/>')`,
	)
}
