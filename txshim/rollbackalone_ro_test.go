package txshim

import (
	"strings"
	"testing"
)

// TestReadOnlyRollbackThenAloneStatement: in a read-only mode, a simple Query whose last
// statement cannot run in a transaction block was split after the ROLLBACK before it, to put
// default_transaction_read_only back on before it ran alone: outside any block, where PostgreSQL runs it in the query's implicit block and refuses
// it (25001). 'BEGIN; SELECT 1; ROLLBACK; VACUUM t' (DISCARD ALL, ALTER SYSTEM) ran. The replies
// must be PostgreSQL's under default_transaction_read_only = on.
func TestReadOnlyRollbackThenAloneStatement(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE TABLE lt (id int)`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	noStatus := func(got string) string { return strings.ReplaceAll(got, "S", "") }
	for _, pre := range []string{"BEGIN; SELECT 1; ROLLBACK; ", "BEGIN; ROLLBACK; ", "BEGIN; SELECT 1; ROLLBACK; ; ", "SELECT 1; ", "BEGIN; SELECT 1/0; COMMIT; ", "COMMIT; ", "ROLLBACK; "} {
		for _, q := range []string{"VACUUM lt", "DISCARD ALL", "ALTER SYSTEM SET work_mem = '5MB'", "LOCK TABLE lt IN ACCESS SHARE MODE", "DECLARE cc CURSOR FOR SELECT 1", "SELECT 2"} {
			query := pre + q
			r := dialRaw(t, s)
			got, gotNext := noStatus(r.query(query)), noStatus(r.query("SHOW default_transaction_read_only"))
			r.conn.Close()
			d := dialRawDSN(t, c.DSN(c.Database()))
			d.query("SET default_transaction_read_only = on")
			want, wantNext := noStatus(d.query(query)), noStatus(d.query("SHOW default_transaction_read_only"))
			d.conn.Close()
			if got != want || gotNext != wantNext {
				t.Errorf("%q: replies %s, then %s; PostgreSQL's %s, then %s", query, got, gotNext, want, wantNext)
			}
		}
	}
}
