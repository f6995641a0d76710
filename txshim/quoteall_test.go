package txshim

import "testing"

// TestFidelityQuoteAllIdentifiers: quote_all_identifiers decides what quote_ident (immutable
// to PostgreSQL) makes of a name: "abc" or abc. DDL through the shim that computes it for the
// rows there — the default of a column added to a table that has rows, a conversion USING
// quote_ident — computed it on the peer under the apply session's setting, and the rows
// differed silently.
func TestFidelityQuoteAllIdentifiers(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE names (id int PRIMARY KEY, n text)`,
		`INSERT INTO names VALUES (1, 'abc')`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"names"},
		`SET quote_all_identifiers = on`,
		`ALTER TABLE names ADD COLUMN q text DEFAULT quote_ident('abc')`,
		`ALTER TABLE names ALTER COLUMN n TYPE varchar USING quote_ident(n)`,
		`RESET quote_all_identifiers`,
		`INSERT INTO names (id, n) VALUES (2, 'x')`,
	)
}
