package txshim

import "testing"

// TestFidelityTimezoneAbbreviations: timezone_abbreviations decides what a time zone
// abbreviation in a literal means (IST is Israel's +02 in the Default set, India's +05:30 in
// the India one), and a DDL statement's literals are read as it is parsed: a default given to
// the rows already there must be the same instant on the peer.
func TestFidelityTimezoneAbbreviations(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE tza (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"tza"},
		`INSERT INTO tza VALUES (1)`,
		`SET timezone_abbreviations = 'India'`,
		`ALTER TABLE tza ADD COLUMN at timestamptz DEFAULT '2024-01-01 10:00 IST'`,
		`INSERT INTO tza VALUES (2)`,
	)
}
