package txshim

import (
	"testing"
)

// TestDDLAfterCallShapesCompare: extended requests with a procedure then DDL (beginBehind), and
// more after them — temporary, COMMENT, CREATE TABLE AS, ALTER TABLE then a write, an error, a procedure with OUT parameters or its own ROLLBACK, several
// procedures, an explicit block around, BEGIN, COMMIT or ROLLBACK after, a write the peer must
// apply after the procedure's commit — and a procedure then BEGIN whose reply waits in the
// block (awaitShippedInBlock) reply through the shim as PostgreSQL replies, the peer alike.
// (Not here, as they differ from PostgreSQL before and after beginBehind: DDL then a procedure
// in one implicit transaction, refused 0A000; a procedure after DDL after a procedure, 2D000
// in the shim's block; SAVEPOINT in the shim's block, whose 25P01 names all three savepoint
// statements.)
func TestDDLAfterCallShapesCompare(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	o.both(t, `CREATE TABLE dcs (id int PRIMARY KEY, v text)`,
		`CREATE PROCEDURE dcs_p(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO dcs VALUES (i, 'p'); COMMIT; END$$`,
		`CREATE PROCEDURE dcs_nc(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO dcs VALUES (i, 'n'); END$$`,
		`CREATE PROCEDURE dcs_o(i int, INOUT o int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO dcs VALUES (i, 'o'); COMMIT; o := i; END$$`,
		`CREATE PROCEDURE dcs_r(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO dcs VALUES (i, 'r'); COMMIT; INSERT INTO dcs VALUES (i+1000, 'r'); ROLLBACK; END$$`)
	tables := "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 'dcs_t%' AND relpersistence <> 't'"
	rows := "SELECT string_agg(id::text, ',' ORDER BY id) FROM dcs"
	steps := []xstep{
		xpipe("CALL dcs_p(1)", "CREATE TABLE dcs_t1 (i int)", "SELECT 1/0"),
		xpipe("CALL dcs_o(3, NULL)", "CREATE TABLE dcs_t3 (i int)"),
		xpipe("CALL dcs_r(4)", "CREATE TABLE dcs_t4 (i int)"),
		xpipe("CALL dcs_p(5)", "CALL dcs_p(6)", "CREATE TABLE dcs_t5 (i int)"),
		xpipe("BEGIN", "CALL dcs_nc(7)", "CREATE TABLE dcs_t7 (i int)", "COMMIT"),
		xpipe("CALL dcs_p(8)", "CREATE TABLE dcs_t8 (i int)", "BEGIN", "SELECT 1"),
		xq("COMMIT"),
		xpipe("CALL dcs_p(9)", "CREATE TABLE dcs_t9 (i int)", "COMMIT"),
		xpipe("CALL dcs_p(10)", "CREATE TABLE dcs_t10 (i int)", "ROLLBACK"),
		xpipe("CALL dcs_p(14)", "CREATE TABLE dcs_t14 (i int)", "INSERT INTO dcs VALUES (15, 'x')", "CREATE TABLE dcs_t15 (i int)"),
		xpipe("CALL dcs_p(17)", "INSERT INTO dcs VALUES (18, 'x')", "CALL dcs_p(19)"),
		xpipe("CALL dcs_p(20)", "CREATE TABLE dcs_t20 (i int)", "DELETE FROM dcs WHERE id = 20"),
		xpipe("DO $$BEGIN INSERT INTO dcs VALUES (22, 'd'); COMMIT; END$$", "CREATE TABLE dcs_t22 (i int)"),
		xpipe("CALL dcs_p(23)", "CREATE TEMP TABLE dcs_t23 (i int)", "INSERT INTO dcs VALUES (24, 'x')"),
		xpipe("CALL dcs_p(25)", "COMMENT ON TABLE dcs IS 'c25'"),
		xpipe("CALL dcs_p(26)", "CREATE TABLE dcs_t26 AS SELECT 1 AS i"),
		xpipe("CALL dcs_p(27)", "ALTER TABLE dcs ADD COLUMN w int", "INSERT INTO dcs VALUES (28, 'x', 1)"),
		xpipe("CALL dcs_p(21)", "BEGIN ISOLATION LEVEL REPEATABLE READ"),
		xq("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
		xq("SHOW transaction_isolation"),
		xq("COMMIT"),
		xq("SHOW transaction_isolation"),
		xq(tables),
		xq(rows),
	}
	before := e.shim.Stats()
	o.compare(t, steps)
	e.settle(t, before)
	o.sameRows(t, "tables", tables)
	o.sameRows(t, "rows", rows)
}
