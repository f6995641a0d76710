package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestFidelityLikeTempTable: a session's temporary table hides a permanent one of the same name
// (the session's temporary schema is searched first, though the search_path does not say it).
// CREATE TABLE … (LIKE name) through the shim copied the temporary table's columns on the local
// database, and the permanent one's on the peer, which lacks the session's temporary table:
// the two tables differed. It is refused (0A000), as is LIKE pg_temp.name; LIKE of the
// permanent table by its schema, and a temporary table LIKE the temporary one, are not.
func TestFidelityLikeTempTable(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"items"}, `CREATE TEMP TABLE items (id int, w int, z text)`)
	ctx := capCtx(t, 30*time.Second)
	for _, q := range []string{
		`CREATE TABLE copied (LIKE items)`,
		`CREATE TABLE IF NOT EXISTS public.copied (n int, LIKE pg_temp.items INCLUDING ALL)`,
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
			t.Fatalf("%s: %v, want 0A000", q, err)
		}
	}
	fidelityStep(t, p, sh, conn, []string{"items", "copied"},
		`CREATE TABLE copied (LIKE public.items)`,
		`CREATE TEMP TABLE scratch (LIKE items)`,
		`SET search_path = pg_temp, public`,
		`CREATE TABLE scratch2 (LIKE items)`,
		`RESET search_path`,
		`INSERT INTO copied VALUES (1, 'a')`,
	)
	const q = `SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'public.copied'::regclass AND attnum > 0 AND NOT attisdropped`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != r {
		t.Errorf("columns of copied: local %s, peer %s", l, r)
	}
}

func TestLikeSources(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		stmt            string
		names           string
		temp, qualified bool
	}{
		{`CREATE TABLE a (LIKE b)`, `"b"`, false, false},
		{`create unlogged table if not exists s.a (x int, like "S".b including all, like c, check (x like 'y'))`, `"S"."b","c"`, false, true},
		{`CREATE TEMP TABLE a (LIKE b)`, `"b"`, true, false},
		{`CREATE TABLE pg_temp.a (LIKE b)`, `"b"`, true, true},
		{`CREATE TABLE U&"pg\005ftemp".a (LIKE b)`, `"b"`, true, true},
		{`CREATE TABLE U&"\0061" (LIKE U&"it\0065ms" INCLUDING ALL, LIKE U&"!0069tems" UESCAPE '!', LIKE public."Odd""x")`, `"items","items","public"."Odd""x"`, false, false},
		{`CREATE TABLE a (x text CHECK (x LIKE 'b'), y int)`, "", false, false},
		{`CREATE TABLE a AS SELECT 1`, "", false, false},
		{`CREATE TABLE a /* (LIKE b) */ (n int)`, "", false, false},
		{`ALTER TABLE a ADD COLUMN x int`, "", false, false},
		{`CREATE SCHEMA s CREATE TABLE a (LIKE b) CREATE VIEW v AS SELECT 'x' LIKE 'y' CREATE TABLE c (n int, LIKE d.e)`, `"b","d"."e"`, false, true},
		{`CREATE SCHEMA s AUTHORIZATION r`, "", false, true},
	} {
		names, temp, qualified, _ := likeSources(c.stmt)
		if got := strings.Join(names, ","); got != c.names || temp != c.temp || qualified != c.qualified {
			t.Errorf("likeSources(%q) = %q, %v, %v; want %q, %v, %v", c.stmt, got, temp, qualified, c.names, c.temp, c.qualified)
		}
	}
}

// TestFidelityLikeTempTableInCreateSchema: CREATE SCHEMA ... CREATE TABLE ... (LIKE tmp) copies
// the temporary table's columns as CREATE TABLE alone does (the session's temporary schema is
// still searched first), and the check let it through: the peer copied the permanent table's.
func TestFidelityLikeTempTableInCreateSchema(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"items"}, `CREATE TEMP TABLE items (id int, w int, z text)`)
	ctx := capCtx(t, 30*time.Second)
	q := `CREATE SCHEMA s2 CREATE TABLE copied (LIKE items)`
	_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		waitForLong(t, "the peer to hold every commit, or a refusal", 60*time.Second, func() bool {
			return sh.Err() != nil || sh.Backlog() == 0
		})
		const cq = `SELECT coalesce(string_agg(attname, ',' ORDER BY attnum), '') FROM pg_attribute WHERE attrelid = to_regclass('s2.copied') AND attnum > 0 AND NOT attisdropped`
		t.Fatalf("%s: %v, want 0A000 (columns of s2.copied: local %q, peer %q)", q, err, queryOne[string](t, p.ldb, cq), queryOne[string](t, p.pdb, cq))
	}
}

// TestLikeTempTableIfNotExists: CREATE TABLE IF NOT EXISTS t (LIKE tmp) where t is there makes
// nothing (PostgreSQL says so and goes on), on either database: the check refused it all the
// same (0A000), where it had run before — a migration that makes its tables if they are
// missing, from a session that has a temporary table of the name it copies.
func TestLikeTempTableIfNotExists(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`,
		`CREATE TABLE copied (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"items", "copied"},
		`CREATE TEMP TABLE items (id int, w int, z text)`,
		`CREATE TABLE IF NOT EXISTS copied (LIKE items)`,
		`CREATE TABLE IF NOT EXISTS public.copied (LIKE items)`,
		`INSERT INTO copied VALUES (1, 'a')`,
	)
	ctx := capCtx(t, 30*time.Second)
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS copied2 (LIKE items)`,
		`CREATE TABLE IF NOT EXISTS "public"."copied2" (LIKE items)`,
	} {
		_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
			t.Fatalf("%s: %v, want 0A000", q, err)
		}
	}
}

// TestFidelityLikeTempTableUnicodeName: LIKE U&"…" of a temporary table was let through (the
// check read the name as the word U, and to_regclass reads no U&"…"): the local database
// copied the temporary table's columns, the peer the permanent one's.
func TestFidelityLikeTempTableUnicodeName(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE items (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"items"}, `CREATE TEMP TABLE items (id int, w int, z text)`)
	ctx := capCtx(t, 30*time.Second)
	q := `CREATE TABLE copied (LIKE U&"it\0065ms")`
	_, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
		waitForLong(t, "the peer to hold every commit, or a refusal", 60*time.Second, func() bool {
			return sh.Err() != nil || sh.Backlog() == 0
		})
		const cq = `SELECT coalesce(string_agg(attname, ',' ORDER BY attnum), '') FROM pg_attribute WHERE attrelid = to_regclass('public.copied') AND attnum > 0 AND NOT attisdropped`
		t.Fatalf("%s: %v, want 0A000 (columns of copied: local %q, peer %q)", q, err, queryOne[string](t, p.ldb, cq), queryOne[string](t, p.pdb, cq))
	}
	// A permanent table named so passes.
	fidelityStep(t, p, sh, conn, []string{"items", "copied"}, `CREATE TABLE copied (LIKE public.U&"it\0065ms")`)
}
