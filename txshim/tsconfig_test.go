package txshim

import (
	"testing"
	"time"
)

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

// TestFidelityTextSearchConfigServerDefault: a default_text_search_config from the server's
// configuration (postgresql.conf, ALTER SYSTEM) is read outside a transaction, where
// PostgreSQL keeps it as written ("simple"), not schema-qualified as a SET's. The apply looked
// for that text among the peer's configurations' qualified names, found none, and ran the DDL
// under the apply session's (english, the peer's default): the peer refused the constraint the
// local rows met (23514), and the client's commit was rolled back.
func TestFidelityTextSearchConfigServerDefault(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE docs (id int PRIMARY KEY, body text)`,
		`INSERT INTO docs VALUES (1, 'the cat')`)
	for _, q := range []string{`ALTER SYSTEM SET default_text_search_config = 'simple'`, `SELECT pg_reload_conf()`} {
		if _, err := p.ldb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	waitForLong(t, "the server's default_text_search_config", 10*time.Second, func() bool {
		var v string
		err := conn.QueryRow(capCtx(t, 5*time.Second), `SELECT current_setting('default_text_search_config')`).Scan(&v)
		return err == nil && v == "simple"
	})
	fidelityStep(t, p, sh, conn, []string{"docs"},
		`ALTER TABLE docs ADD CONSTRAINT has_the CHECK (to_tsvector(body) @@ 'the'::tsquery)`,
	)
}

// TestSplitQualifiedName: a setting's value read as PostgreSQL reads a qualified name.
func TestSplitQualifiedName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v, schema, name string
		ok              bool
	}{
		{"simple", "", "simple", true},
		{"Simple", "", "simple", true},
		{"pg_catalog.english", "pg_catalog", "english", true},
		{`"pg_catalog"."simple"`, "pg_catalog", "simple", true},
		{` "My ""cfg""" . "X" `, `My "cfg"`, "X", true},
		{` Public . "My ""Cfg""" `, "public", `My "Cfg"`, true},
		{`"unclosed`, "", "", false},
		{`""`, "", "", false},
		{`a..b`, "", "", false},
		{`a.`, "", "", false},
		{`a b`, "", "", false},
		{`db.s.c`, "", "", false},
		{``, "", "", false},
	} {
		schema, name, ok := splitQualifiedName(tc.v)
		if ok != tc.ok || ok && (schema != tc.schema || name != tc.name) {
			t.Errorf("splitQualifiedName(%q) = %q, %q, %v; want %q, %q, %v", tc.v, schema, name, ok, tc.schema, tc.name, tc.ok)
		}
	}
}
