package txshim

import "testing"

// TestFidelityTextSearchConfig: default_text_search_config decides what to_tsvector and
// to_tsquery without a configuration make of a text. DDL through the shim that computes them
// for the rows there — a CHECK constraint's validation — computed them on the peer under the
// apply session's configuration: a constraint the local database found the rows to meet, the
// peer did not, refused the statement, and the client's commit was rolled back. (Rows written
// after it are checked on the peer under the apply session's configuration all the same: a
// CHECK constraint that reads a setting is not immutable, which PostgreSQL asks of one.)
func TestFidelityTextSearchConfig(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE docs (id int PRIMARY KEY, body text)`,
		`INSERT INTO docs VALUES (1, 'the cat')`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"docs"},
		`SET default_text_search_config = 'pg_catalog.simple'`,
		`ALTER TABLE docs ADD CONSTRAINT has_the CHECK (to_tsvector(body) @@ 'the'::tsquery)`,
		`RESET default_text_search_config`,
	)
}

// TestFidelityTextSearchConfigQuoted: a session that set default_text_search_config with
// quote_all_identifiers on recorded it as PostgreSQL wrote it then, "pg_catalog"."simple";
// the apply looked for that name with the peer's quote_ident, under the apply session's
// quote_all_identifiers (off: pg_catalog.simple), found none, and ran the DDL under its own
// configuration (the peer refused the constraint, 23514).
func TestFidelityTextSearchConfigQuoted(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE docs (id int PRIMARY KEY, body text)`,
		`INSERT INTO docs VALUES (1, 'the cat')`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"docs"},
		`SET quote_all_identifiers = on`,
		`SET default_text_search_config = 'pg_catalog.simple'`,
		`ALTER TABLE docs ADD CONSTRAINT has_the CHECK (to_tsvector(body) @@ 'the'::tsquery)`,
		`RESET default_text_search_config`,
		`RESET quote_all_identifiers`,
	)
}
