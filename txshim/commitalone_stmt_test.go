package txshim

import (
	"strings"
	"testing"
)

// TestCommitThenAloneStatement: a simple Query the shim splits after a COMMIT (a dual commit,
// or a transaction with nothing in it) sent the one statement left alone, outside any
// transaction block, where PostgreSQL runs it in the query's implicit block: LOCK and DECLARE
// failed (25P01) where PostgreSQL runs them, and VACUUM ran where PostgreSQL refuses it
// (25001). The replies must be PostgreSQL's.
func TestCommitThenAloneStatement(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE lt (id int PRIMARY KEY)`)
	for i, q := range []string{"LOCK TABLE lt IN ACCESS SHARE MODE", "DECLARE cc CURSOR FOR SELECT 1", "VACUUM lt", "SELECT 2"} {
		for _, begin := range []string{"BEGIN; INSERT INTO lt VALUES (%d)", "BEGIN"} {
			query := strings.Replace(begin, "%d", string(rune('1'+i)), 1) + "; COMMIT; " + q
			r := dialRaw(t, s)
			got := r.query(query)
			r.conn.Close()
			c.Exec(t, `DELETE FROM lt`)
			d := dialRawDSN(t, c.DSN(c.Database()))
			want := d.query(query)
			d.conn.Close()
			c.Exec(t, `DELETE FROM lt`)
			if got != want {
				t.Errorf("%q: replies %s; PostgreSQL's %s", query, got, want)
			}
		}
	}
}
