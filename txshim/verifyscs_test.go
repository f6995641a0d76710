package txshim

import "testing"

// TestVerifyStandardConformingStrings: a database whose default is standard_conforming_strings
// = off (a legacy application's setting, under which PostgreSQL spells a backslash in a
// definition's string literal doubled) is still identical to a peer that holds the same
// definitions, for verify and install alike.
func TestVerifyStandardConformingStrings(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text CHECK (v <> 'a\b'), g text GENERATED ALWAYS AS (v || '\') STORED)`,
		`CREATE UNIQUE INDEX kv_v ON kv (v) WHERE v <> '\x'`,
		`INSERT INTO kv VALUES (1, 'x\y')`)
	requireIdenticalUnder(t, p, `ALTER DATABASE app SET standard_conforming_strings = off`)
}
