package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestDDLAfterFlushCompare: DDL in a request's last part after a part sent before its Sync
// (status not known), behind a procedure or a plain statement, runs as PostgreSQL runs it: the
// part walk sends to learn the status before the DDL must not end the implicit transaction
// between the DDL's Bind and its Execute, which drops the unnamed portal (34000). So does DDL
// after a procedure in the same request, in the implicit transaction the procedure goes on in
// (it was left unrecorded, refused by the event trigger).
func TestDDLAfterFlushCompare(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	o.both(t, `CREATE TABLE dfc (id int PRIMARY KEY, v text)`,
		`CREATE PROCEDURE dfc_p(i int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO dfc VALUES (i, 'p'); COMMIT; END$$`)
	steps := []xstep{
		xmsgs("C", "SELECT 1", &pgproto3.Flush{}),
		xmsgs("Z", "CALL dfc_p(1)", "CREATE TABLE dfc_t1 (i int)", &pgproto3.Sync{}),
		xmsgs("C", "SELECT 1", &pgproto3.Flush{}),
		xmsgs("Z", "SELECT 2", "CREATE TABLE dfc_t2 (i int)", &pgproto3.Sync{}),
		xmsgs("C", "SELECT 1", &pgproto3.Flush{}),
		xmsgs("Z", "CREATE TABLE dfc_t3 (i int)", &pgproto3.Sync{}),
		xmsgs("C", "SELECT 1", &pgproto3.Flush{}),
		xmsgs("Z", "CALL dfc_p(8)", "CREATE TABLE dfc_t8 (i int)", "SELECT 1/0", &pgproto3.Sync{}),
		xpipe("CALL dfc_p(4)", "CREATE TABLE dfc_t4 (i int)"),
		xpipe("CALL dfc_p(6)", "SELECT 1", "CREATE TABLE dfc_t6 (i int)", "SELECT 1/0"),
		xq("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 'dfc_t%'"),
		xq("SELECT string_agg(id::text, ',' ORDER BY id) FROM dfc"),
	}
	before := e.shim.Stats()
	o.compare(t, steps)
	e.settle(t, before)
	o.sameRows(t, "tables", "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relname LIKE 'dfc_t%'")
	o.sameRows(t, "rows", "SELECT string_agg(id::text, ',' ORDER BY id) FROM dfc")
}
