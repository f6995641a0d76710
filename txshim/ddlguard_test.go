package txshim

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestDDLInsideRoutinesRefused: DDL that runs inside another statement sent through the shim —
// a DO block, a function, a procedure — is not recorded in tandem.ddl, so the peer would never
// get it: the event trigger install makes refuses it (0A000, "tandem: …") and the statement's
// transaction rolls back, on the simple and the extended protocol, in solo and dual mode,
// also behind top-level DDL the shim recorded in the same request or transaction. DDL on
// temporary objects inside them still runs (in a transaction that rolls back; one that commits
// is TestTempObjectsCommitPlainly's); top-level DDL through the shim still ships, with
// the shim's own DDL after it (REPLICA IDENTITY FULL, the ALTER … TYPE … USING check), as do
// CREATE INDEX CONCURRENTLY and CREATE EXTENSION; DDL straight on a database is left alone.
func TestDDLInsideRoutinesRefused(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE items (id int PRIMARY KEY, v int)`)
	ctx := capCtx(t, 120*time.Second)
	conn := shim.connect(t)
	simple, ext := pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec
	exec := func(sql string, mode pgx.QueryExecMode) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, mode); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	tables := func(name string) (local, peer int) {
		t.Helper()
		q := `SELECT count(*) FROM pg_class WHERE relname = $1 AND relpersistence <> 't'`
		return queryOne[int](t, p.ldb, q, name), queryOne[int](t, p.pdb, q, name)
	}
	refused := func(sql string, mode pgx.QueryExecMode, absent ...string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql, mode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.HasPrefix(pe.Message, "tandem:") || !strings.Contains(pe.Hint, "statement of its own") {
			t.Fatalf("%s: err = %v, want 0A000 tandem: … (send it as a statement of its own)", sql, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`, simple)
		}
		for _, name := range absent {
			if l, pr := tables(name); l != 0 || pr != 0 {
				t.Fatalf("%s: table %s left on the local database (%d) or the peer (%d)", sql, name, l, pr)
			}
		}
	}

	// Solo mode: refused as well (the DDL would reach the peer only through tandem.ddl).
	refused(`DO $$BEGIN CREATE TABLE solo_t (i int PRIMARY KEY); END$$`, simple, "solo_t")
	catchUpToDual(t, sh, shim)

	exec(`CREATE FUNCTION make_table() RETURNS void LANGUAGE plpgsql AS $$BEGIN CREATE TABLE f_t (i int PRIMARY KEY); END$$`, simple)
	exec(`CREATE FUNCTION drop_items() RETURNS void LANGUAGE sql AS $$DROP TABLE items$$`, simple)
	exec(`CREATE PROCEDURE make_p() LANGUAGE plpgsql AS $$BEGIN CREATE TABLE p_t (i int PRIMARY KEY); END$$`, simple)
	exec(`CREATE FUNCTION temp_work() RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
  CREATE TEMP TABLE IF NOT EXISTS scratch (id serial PRIMARY KEY, v text DEFAULT 'x');
  CREATE INDEX ON scratch (v);
  ALTER TABLE scratch ADD COLUMN w int;
  INSERT INTO scratch (v) SELECT g::text FROM generate_series(1, 3) g;
  SELECT count(*) INTO n FROM scratch;
  DROP TABLE scratch;
  RETURN n;
END$$`, simple)
	exec(`INSERT INTO items VALUES (1, 10), (2, 20)`, simple)

	for _, mode := range []pgx.QueryExecMode{simple, ext} {
		refused(`DO $$BEGIN CREATE TABLE do_t (i int PRIMARY KEY); END$$`, mode, "do_t")
		refused(`DO $$BEGIN EXECUTE 'ALTER TABLE items ADD COLUMN w int'; END$$`, mode)
		refused(`SELECT make_table()`, mode, "f_t")
		refused(`CALL make_p()`, mode, "p_t")
		refused(`SELECT drop_items()`, mode)
		if l, pr := tables("items"); l != 1 || pr != 1 {
			t.Fatalf("items dropped: local %d, peer %d", l, pr)
		}
		// Temporary objects inside a function or a DO block: allowed (in a transaction that
		// rolls back; TestTempObjectsCommitPlainly commits such transactions).
		exec(`BEGIN`, simple)
		var n int
		if err := conn.QueryRow(ctx, `SELECT temp_work()`, mode).Scan(&n); err != nil || n != 3 {
			t.Fatalf("temp_work(): %d, %v", n, err)
		}
		exec(`DO $$BEGIN CREATE TEMP TABLE scratch2 (i int PRIMARY KEY); DROP TABLE scratch2; END$$`, mode)
		exec(`ROLLBACK`, simple)
	}
	// Behind DDL the shim records, in one request or one transaction: the mark that lets the
	// recorded statement through ends with it. First one extended-protocol pipeline (a single
	// Sync): the recorded CREATE TABLE, then a DO block.
	b := &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{
		{SQL: `CREATE TABLE g_t (i int PRIMARY KEY)`}, {SQL: `DO $$BEGIN CREATE TABLE h_t (i int PRIMARY KEY); END$$`}}}
	err := conn.SendBatch(ctx, b).Close()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.HasPrefix(pe.Message, "tandem:") {
		t.Fatalf("pipeline CREATE TABLE; DO block with DDL: err = %v, want 0A000 tandem: …", err)
	}
	for _, name := range []string{"g_t", "h_t"} {
		if l, pr := tables(name); l != 0 || pr != 0 {
			t.Fatalf("pipeline: table %s left on the local database (%d) or the peer (%d)", name, l, pr)
		}
	}
	refused(`CREATE TABLE a_t (i int PRIMARY KEY); DO $$BEGIN CREATE TABLE b_t (i int PRIMARY KEY); END$$`, simple, "a_t", "b_t")
	exec(`BEGIN`, simple)
	exec(`CREATE TABLE c_t (i int PRIMARY KEY)`, ext)
	refused(`SELECT make_table()`, ext, "c_t", "f_t")
	exec(`BEGIN`, simple)
	exec(`CREATE TABLE c_t (i int PRIMARY KEY)`, simple)
	exec(`INSERT INTO c_t VALUES (1)`, simple)
	refused(`DO $$BEGIN CREATE TABLE d_t (i int PRIMARY KEY); END$$`, simple, "c_t", "d_t")
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM tandem.ddl WHERE stmt LIKE '%a_t%' OR stmt LIKE '%c_t%'`); n != 0 {
		t.Fatalf("tandem.ddl keeps %d rows of rolled back DDL", n)
	}

	// Top-level DDL through the shim ships, with the shim's own DDL after it.
	exec(`CREATE TABLE keyless (a int, b text)`, simple)
	exec(`INSERT INTO keyless VALUES (1, 'x')`, simple)
	exec(`UPDATE keyless SET b = 'y' WHERE a = 1`, ext)
	exec(`ALTER TABLE items ALTER COLUMN v TYPE bigint USING v * 2`, simple)
	exec(`BEGIN; CREATE TABLE e_t (i int PRIMARY KEY); INSERT INTO e_t VALUES (1); COMMIT`, simple)
	exec(`CREATE INDEX CONCURRENTLY items_v ON items (v)`, simple)
	exec(`CREATE EXTENSION IF NOT EXISTS citext`, simple)
	// In a pipeline with other statements, CREATE INDEX CONCURRENTLY cannot run marked alone:
	// refused before anything runs.
	b = &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{
		{SQL: `CREATE INDEX CONCURRENTLY items_piped ON items (v)`}, {SQL: `SELECT 1`}}}
	if err := conn.SendBatch(ctx, b).Close(); !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "CONCURRENTLY must be the only statement") {
		t.Fatalf("pipelined CREATE INDEX CONCURRENTLY: err = %v, want 0A000 … must be the only statement", err)
	}
	if l, pr := tables("items_piped"); l != 0 || pr != 0 {
		t.Fatalf("pipelined CREATE INDEX CONCURRENTLY left its index: local %d, peer %d", l, pr)
	}
	exec(`DROP TABLE e_t`, ext)
	for _, name := range []string{"keyless", "items_v"} {
		if l, pr := tables(name); l != 1 || pr != 1 {
			t.Fatalf("%s: local %d, peer %d, want it on both", name, l, pr)
		}
	}
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(v::text, ',' ORDER BY id) FROM items`); got != "20,40" {
		t.Fatalf("peer items.v = %s, want 20,40", got)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_extension WHERE extname = 'citext'`); n != 1 {
		t.Fatal("CREATE EXTENSION did not reach the peer")
	}
	waitForLong(t, "the peer's keyless row", 10*time.Second, func() bool {
		return queryOne[string](t, p.pdb, `SELECT coalesce(string_agg(b, ','), '') FROM keyless`) == "y"
	})

	// A client cannot unmark its session by sending tandem.client itself, as a startup
	// parameter or in options: the shim's value comes last.
	other, err := pgx.Connect(ctx, shim.dsn("postgres")+"&tandem.client=off&options=-c%20tandem.client%3Doff")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, `DO $$BEGIN CREATE TABLE unmarked_t (i int PRIMARY KEY); END$$`); !errors.As(err, &pe) || pe.Code != "0A000" {
		t.Fatalf("DDL in a DO block from a client that sent tandem.client=off: err = %v, want 0A000", err)
	}

	// DDL straight on the database (install's, an operator's) is not the trigger's business.
	if _, err := p.ldb.Exec(`DO $$BEGIN CREATE TABLE direct_t (i int PRIMARY KEY); DROP TABLE direct_t; END$$`); err != nil {
		t.Fatalf("DDL in a DO block straight on the database: %v", err)
	}
	if _, err := p.ldb.Exec(`SELECT make_table()`); err != nil {
		t.Fatalf("a function's DDL straight on the database: %v", err)
	}
	if _, err := p.ldb.Exec(`DROP TABLE f_t`); err != nil {
		t.Fatal(err)
	}

	// The peer's COMMIT PREPARED of the last dual commits (the DROP TABLE among them) may come
	// after their replies.
	waitForLong(t, "the peer's commits", 10*time.Second, func() bool { return sh.Backlog() == 0 })
	diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", err, diffs)
	}
}
