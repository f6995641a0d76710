package txshim

import (
	"fmt"
	"testing"
)

// TestAloneBeforeCommitInQuery: a simple Query of several statements runs in one implicit
// transaction block, where PostgreSQL refuses VACUUM, CREATE DATABASE, CREATE INDEX
// CONCURRENTLY and their kin (25001) and allows LOCK and DECLARE. The shim sent the one
// statement before a COMMIT it runs (split there) alone, outside any block: VACUUM and CREATE
// DATABASE ran, CREATE INDEX CONCURRENTLY left an index on the local database only (and
// answered with the event trigger's misleading 0A000), and LOCK and DECLARE failed with 25P01,
// the writes after the COMMIT not run. It now runs in the shim's block, as in PostgreSQL's.
func TestAloneBeforeCommitInQuery(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	ins := func(tb string, id int) string { return fmt.Sprintf("INSERT INTO %s VALUES (%d, 'v%d')", tb, id, id) }
	o.both(t, `CREATE TABLE ab (id int PRIMARY KEY, v text)`)
	const tb = "ab"
	steps := []xstep{
		xq("LOCK " + tb + "; COMMIT; " + ins(tb, 1)),
		xq("DECLARE c CURSOR FOR SELECT 1; COMMIT; " + ins(tb, 2)),
		xq("BEGIN; " + ins(tb, 3) + "; COMMIT; LOCK " + tb + "; COMMIT"),
		xq("VACUUM " + tb + "; COMMIT; " + ins(tb, 4)),
		xq(ins(tb, 5) + "; COMMIT; VACUUM " + tb + "; COMMIT; " + ins(tb, 6)),
		xq("CREATE INDEX CONCURRENTLY ab_x ON " + tb + " (v); COMMIT; " + ins(tb, 7)),
		xq("SELECT count(*) FROM pg_class WHERE relname = 'ab_x'"),
		xq("LOCK " + tb + "; COMMIT AND CHAIN; " + ins(tb, 8)),
		xq("VACUUM " + tb + "; COMMIT AND CHAIN; " + ins(tb, 9)),
		xq("CREATE DATABASE ab_db; COMMIT"),
		xq("SELECT count(*) FROM pg_database WHERE datname = 'ab_db'"),
		xq("SELECT id FROM " + tb + " ORDER BY id"),
	}
	before := e.shim.Stats()
	o.compare(t, steps)
	e.settle(t, before)
	o.sameRows(t, "rows", "SELECT string_agg(id::text, ',' ORDER BY id) FROM "+tb)
}

// TestAloneProcBeforeCommitInQuery: as TestAloneBeforeCommitInQuery, for a procedure (CALL, or
// DO with COMMIT), which PostgreSQL runs in the Query's implicit block, where one that commits
// fails (2D000) and the rest of the Query with it: sent alone, it committed, and the writes
// after the COMMIT were committed too.
func TestAloneProcBeforeCommitInQuery(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	o.both(t, `CREATE TABLE ap (id int PRIMARY KEY, v text)`,
		`CREATE PROCEDURE ap_commit() LANGUAGE plpgsql AS $$BEGIN COMMIT; END$$`,
		`CREATE PROCEDURE ap_ins(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO ap VALUES (i, 'p'); END$$`)
	steps := []xstep{
		xq("CALL ap_commit(); COMMIT; INSERT INTO ap VALUES (1, 'a')"),
		xq("DO $$BEGIN COMMIT; END$$; COMMIT; INSERT INTO ap VALUES (2, 'a')"),
		xq("INSERT INTO ap VALUES (3, 'a'); COMMIT; CALL ap_commit(); COMMIT; INSERT INTO ap VALUES (4, 'a')"),
		xq("CALL ap_ins(5); COMMIT; SELECT 1/0"),
		xq("CALL ap_ins(6); COMMIT; INSERT INTO ap VALUES (7, 'a')"),
		xq("CALL ap_ins(8); COMMIT AND CHAIN; INSERT INTO ap VALUES (9, 'a')"),
		xq("SELECT id FROM ap ORDER BY id"),
	}
	before := e.shim.Stats()
	o.compare(t, steps)
	e.settle(t, before)
	o.sameRows(t, "rows", "SELECT string_agg(id::text, ',' ORDER BY id) FROM ap")
}

// TestAloneSettingBeforeCommitInQuery: as TestAloneBeforeCommitInQuery, for SET LOCAL, SET
// TRANSACTION and SET CONSTRAINTS, which PostgreSQL runs without a word in the Query's
// implicit block: sent alone, before a COMMIT the shim runs or after it, outside any block,
// each got PostgreSQL's warning that it can only be used in transaction blocks (25P01).
func TestAloneSettingBeforeCommitInQuery(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	o.both(t, `CREATE TABLE aset (id int PRIMARY KEY)`)
	steps := []xstep{
		xq("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; COMMIT; SHOW transaction_isolation"),
		xq("SET LOCAL work_mem = '7MB'; COMMIT; SHOW work_mem"),
		xq("SET CONSTRAINTS ALL DEFERRED; COMMIT; INSERT INTO aset VALUES (1)"),
		xq("INSERT INTO aset VALUES (2); COMMIT; SET LOCAL work_mem = '8MB'; COMMIT; SHOW work_mem"),
		xq("INSERT INTO aset VALUES (3); COMMIT; SET LOCAL work_mem = '8MB'"),
		xq("SET LOCAL work_mem = '9MB'; COMMIT AND CHAIN; SHOW work_mem"),
		xq("SELECT id FROM aset ORDER BY id"),
	}
	before := e.shim.Stats()
	o.compare(t, steps)
	e.settle(t, before)
}

// TestAloneProcBeforeCommitDual: a procedure alone before a COMMIT the shim runs in a simple
// Query runs in the shim's block (TestAloneProcBeforeCommitInQuery), whose COMMIT must commit
// its writes dual, as for the same procedure in a block of the client's. The block's BEGIN
// forgot what the procedure, noted before it, made of the transaction (a write): its commit
// was taken for a read-only one's, plain and unwrapped, the peer left out of it.
func TestAloneProcBeforeCommitDual(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	conn := e.connect(t)
	for _, q := range []string{`CREATE TABLE apd (id int PRIMARY KEY, v text)`,
		`CREATE PROCEDURE apd_ins(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO apd VALUES (i, 'p'); END$$`} {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	shim := dialRaw(t, e.shim)
	before := e.shim.Stats()
	for _, q := range []string{
		"BEGIN; CALL apd_ins(1); COMMIT",
		"CALL apd_ins(2); COMMIT",
		"DO $$BEGIN CALL apd_ins(3); END$$; COMMIT; SELECT 1",
	} {
		b := e.shim.Stats()
		out := shim.runSteps([]xstep{xq(q)})
		a := e.shim.Stats()
		if a.CommitsDual-b.CommitsDual != 1 || a.Unwrapped != b.Unwrapped {
			t.Errorf("%q: %s: %d dual commits, %d unwrapped; want 1 dual, none unwrapped", q, out, a.CommitsDual-b.CommitsDual, a.Unwrapped-b.Unwrapped)
		}
	}
	e.settle(t, before)
}
