package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestGeneratedTextWithoutCast: a float, bytea or geometric value reaches text in a stored
// generated column without a CoerceViaIO in the stored tree too: || with an anynonarray
// operand (anytextcat, textanycat: SQL functions PostgreSQL 15 inlines to $1::text || $2 when it
// checks the expression, so takes it for immutable), quote_literal(anyelement), a type's output
// function called by name (float8out(f)), an XML constructor (the value's output function, or
// xmlbinary for a bytea), a STABLE SQL function of the application's (inlined too when
// PostgreSQL checks the expression). Each is refused as f::text is; the common columns applications make
// (the first table) are taken, partitions and children of such a table too.
func TestGeneratedTextWithoutCast(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE gxadd (id int PRIMARY KEY, f float8)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	ctx := capCtx(t, 60*time.Second)
	fidelityStep(t, p, sh, conn, []string{"gxok", "gxpart", "gxkid"},
		`CREATE TABLE gxok (id int PRIMARY KEY, title text, body text, email text, code text, price numeric, qty int,
			name text, doc jsonb, a int, b bytea, d date, f float8, ts timestamp,
			tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', coalesce(title, '') || ' ' || coalesce(body, ''))) STORED,
			le text GENERATED ALWAYS AS (lower(email)) STORED, uc text GENERATED ALWAYS AS (upper(code)) STORED,
			total numeric GENERATED ALWAYS AS (price * qty) STORED, idn text GENERATED ALWAYS AS (id::text || '-' || name) STORED,
			idn2 text GENERATED ALWAYS AS (id || '-' || name) STORED, h text GENERATED ALWAYS AS (md5(name)) STORED,
			dn text GENERATED ALWAYS AS (doc->>'name') STORED, dj text GENERATED ALWAYS AS ((doc->'n')::text) STORED,
			an text GENERATED ALWAYS AS ((a::numeric)::text) STORED, bl int GENERATED ALWAYS AS (length(b)) STORED,
			be text GENERATED ALWAYS AS (encode(b, 'hex')) STORED, yr float8 GENERATED ALWAYS AS (date_part('year', ts)) STORED,
			ai int GENERATED ALWAYS AS (a * 2 + id) STORED, fr float8 GENERATED ALWAYS AS (round(f)) STORED,
			cs text GENERATED ALWAYS AS (CASE WHEN a > 0 THEN 'pos' WHEN a < 0 THEN 'neg' ELSE name END) STORED,
			ql text GENERATED ALWAYS AS (quote_literal(name)) STORED, qa text GENERATED ALWAYS AS (quote_literal(a)) STORED)`,
		`CREATE TABLE gxp (id int, k int, t text GENERATED ALWAYS AS (k || '/' || id) STORED) PARTITION BY RANGE (id)`,
		`CREATE TABLE gxpart PARTITION OF gxp FOR VALUES FROM (0) TO (100)`,
		`CREATE TABLE gxkid (x int) INHERITS (gxok)`,
		`INSERT INTO gxok (id, title, body, email, code, price, qty, name, doc, a, b, d, f, ts)
			VALUES (1, 'T', 'the body', 'A@B', 'x', 1.5, 3, 'n', '{"name": "j", "n": 1.50}', 7, '\x41ff', '2024-01-02', 2.5, '2024-01-02 03:04')`,
		`INSERT INTO gxp (id, k) VALUES (1, 2)`, `INSERT INTO gxkid (id, name, x) VALUES (2, 'k', 1)`)
	for _, c := range []struct{ ddl, table, insert string }{
		{`CREATE TABLE gx1 (id int PRIMARY KEY, f float8, ft text GENERATED ALWAYS AS (f || 'x') STORED)`,
			"gx1", `INSERT INTO gx1 (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
		{`CREATE TABLE gx2 (id int PRIMARY KEY, b bytea, bt text GENERATED ALWAYS AS ('[' || b::bytea || ']'::text) STORED)`,
			"gx2", `INSERT INTO gx2 (id, b) VALUES (1, '\x41ff')`},
		{`ALTER TABLE gxadd ADD COLUMN ft text GENERATED ALWAYS AS ('v=' || f) STORED`,
			"gxadd", `INSERT INTO gxadd (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
		{`CREATE TABLE gx3 (id int PRIMARY KEY, f float4, ft text GENERATED ALWAYS AS (quote_literal(f)) STORED)`,
			"gx3", `INSERT INTO gx3 (id, f) VALUES (1, 0.1::float4 + 0.2::float4)`},
		{`CREATE TABLE gx4 (id int PRIMARY KEY, f float8, ft text GENERATED ALWAYS AS (textin(float8out(f))) STORED)`,
			"gx4", `INSERT INTO gx4 (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
		{`CREATE TABLE gx5 (id int PRIMARY KEY, f float8, ft text GENERATED ALWAYS AS (float8out(f)::text) STORED)`,
			"gx5", `INSERT INTO gx5 (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
		{`CREATE TABLE gx6 (id int PRIMARY KEY, pt point, ft text GENERATED ALWAYS AS (pt || '') STORED)`,
			"gx6", `INSERT INTO gx6 (id, pt) VALUES (1, point(0.1::float8 + 0.2::float8, 1))`},
		{`CREATE TABLE gx7 (id int PRIMARY KEY, f float8, fx text GENERATED ALWAYS AS (xmlelement(name v, f)::text) STORED)`,
			"gx7", `INSERT INTO gx7 (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
		{`CREATE FUNCTION gxft(float8) RETURNS text STABLE LANGUAGE sql AS 'SELECT $1::text';
			CREATE TABLE gx8 (id int PRIMARY KEY, f float8, ft text GENERATED ALWAYS AS (gxft(f)) STORED)`,
			"gx8", `INSERT INTO gx8 (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
	} {
		_, err := conn.Exec(ctx, c.ddl, pgx.QueryExecModeSimpleProtocol)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "0A000" && strings.Contains(pgErr.Message, "generated column") {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v, want 0A000 naming the generated column", c.ddl, err)
		}
		t.Errorf("%s: taken, want 0A000", c.ddl)
		fidelityStep(t, p, sh, conn, []string{c.table},
			`SET extra_float_digits = 0`, `SET bytea_output = escape`, c.insert, `RESET extra_float_digits`, `RESET bytea_output`)
	}
	requireSame(t, p)
}
