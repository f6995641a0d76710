package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestFidelityGeneratedUnderClientSettings: a stored generated column whose expression turns a
// float or bytea into text (f::text, b::text: PostgreSQL takes both for immutable) is computed by
// each database under its own session's settings — the client's on the master, the apply
// session's on the peer. A client at extra_float_digits = 0 or bytea_output = escape made the
// master store other text than the peer. The shim refuses such a column as DDL makes it
// (generatedcheck.go), and takes one whose text depends on no setting.
func TestFidelityGeneratedUnderClientSettings(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE gadd (id int PRIMARY KEY, b bytea)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	ctx := capCtx(t, 60*time.Second)
	fidelityStep(t, p, sh, conn, nil,
		`CREATE TABLE gok (id int PRIMARY KEY, n int, f float8, t text GENERATED ALWAYS AS (id::text || '-' || n::text) STORED,
			h text GENERATED ALWAYS AS (encode(sha256(id::text::bytea), 'hex')) STORED, g float8 GENERATED ALWAYS AS (f * 2) STORED,
			fi text GENERATED ALWAYS AS ((f::int)::text) STORED, fn text GENERATED ALWAYS AS ((f::numeric)::text COLLATE "C") STORED)`,
		`CREATE TEMP TABLE gtemp (f float8, ft text GENERATED ALWAYS AS (f::text) STORED)`,
		`INSERT INTO gok (id, n, f) VALUES (1, 2, 0.1::float8 + 0.2::float8)`)
	// (A date's, time's, interval's or money's text, or an array's, PostgreSQL takes for
	// stable, and refuses in a generation expression itself.)
	for _, c := range []struct{ ddl, table, insert string }{
		{`CREATE TABLE gpt (id int PRIMARY KEY, pt point, ptt text GENERATED ALWAYS AS (pt::text) STORED)`,
			"gpt", `INSERT INTO gpt (id, pt) VALUES (1, point(0.1::float8 + 0.2::float8, 1))`},
		{`CREATE TABLE gset (id int PRIMARY KEY, f float8, ft text GENERATED ALWAYS AS (f::text) STORED)`,
			"gset", `INSERT INTO gset (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
		{`ALTER TABLE gadd ADD COLUMN bt text GENERATED ALWAYS AS (b::text) STORED`,
			"gadd", `INSERT INTO gadd (id, b) VALUES (1, '\x41ff')`},
		{`CREATE TABLE gcat (id int PRIMARY KEY, b bytea, bt text GENERATED ALWAYS AS ((b || '\x00'::bytea)::text) STORED)`,
			"gcat", `INSERT INTO gcat (id, b) VALUES (1, '\x41ff')`},
		{`CREATE DOMAIN dfl AS float8; CREATE TABLE gdom (id int PRIMARY KEY, f dfl, ft text GENERATED ALWAYS AS ((f::float4)::text || '/' || f::text) STORED)`,
			"gdom", `INSERT INTO gdom (id, f) VALUES (1, 0.1::float8 + 0.2::float8)`},
	} {
		_, err := conn.Exec(ctx, c.ddl, pgx.QueryExecModeSimpleProtocol)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "0A000" && strings.Contains(pgErr.Message, "generated column") {
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v, want 0A000 naming the generated column", c.ddl, err)
		}
		// Taken: the values each database computes.
		t.Errorf("%s: taken, want 0A000", c.ddl)
		fidelityStep(t, p, sh, conn, []string{c.table},
			`SET extra_float_digits = 0`, `SET bytea_output = escape`, c.insert, `RESET extra_float_digits`, `RESET bytea_output`)
	}
	requireSame(t, p)
}
