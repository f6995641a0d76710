package txshim

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestImplicitCommitFailsNoTag: a simple Query outside a transaction block whose implicit
// transaction fails at its commit (here a deferred unique constraint) got the CommandComplete of
// its last statement and then the error, where PostgreSQL, which commits before it completes
// the last statement, sends the error in its place: a client reading results one by one saw
// that statement succeed. The shim now holds the last CommandComplete until its commit.
func TestImplicitCommitFailsNoTag(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE itag (id int PRIMARY KEY, v text UNIQUE DEFERRABLE INITIALLY DEFERRED)`)
	cases := []struct {
		name  string
		steps []xstep
	}{
		{"two inserts", []xstep{xq("INSERT INTO itag VALUES (1, 'a'); INSERT INTO itag VALUES (2, 'a')")}},
		{"then a read", []xstep{xq("INSERT INTO itag VALUES (1, 'a'); INSERT INTO itag VALUES (2, 'a'); SELECT 5")}},
		{"do block", []xstep{xq("DO $$BEGIN INSERT INTO itag VALUES (1, 'a'); INSERT INTO itag VALUES (2, 'a'); END$$")}},
		{"copy", []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY itag FROM STDIN"}),
			xmsgs("Z", &pgproto3.CopyData{Data: []byte("1\ta\n2\ta\n")}, &pgproto3.CopyDone{})}},
		{"pipelined queries", []xstep{xmsgs("", &pgproto3.Query{String: "INSERT INTO itag VALUES (1, 'a'); INSERT INTO itag VALUES (2, 'a')"},
			&pgproto3.Query{String: "INSERT INTO itag VALUES (3, 'c')"})}},
		{"commits", []xstep{xq("INSERT INTO itag VALUES (4, 'd'); INSERT INTO itag VALUES (5, 'e')"), xq("DELETE FROM itag")}},
		{"copy between", []xstep{xmsgs("GZ", &pgproto3.Query{String: "INSERT INTO itag VALUES (1, 'a'); COPY itag FROM STDIN; INSERT INTO itag VALUES (3, 'c')"}),
			xmsgs("Z", &pgproto3.CopyData{Data: []byte("2\tb\n")}, &pgproto3.CopyDone{}), xq("DELETE FROM itag")}},
		{"two copies", []xstep{xmsgs("GZ", &pgproto3.Query{String: "COPY itag FROM STDIN; COPY itag FROM STDIN"}),
			xmsgs("GZ", &pgproto3.CopyData{Data: []byte("2\tb\n")}, &pgproto3.CopyDone{}),
			xmsgs("Z", &pgproto3.CopyData{Data: []byte("3\tc\n")}, &pgproto3.CopyDone{}), xq("DELETE FROM itag")}},
		{"parameter status", []xstep{xq("INSERT INTO itag VALUES (1, 'a'); SET application_name = 'itag1'"),
			xq("INSERT INTO itag VALUES (2, 'b'); RESET application_name"), xq("DELETE FROM itag")}},
		{"statement fails", []xstep{xq("INSERT INTO itag VALUES (4, 'd'); SELECT 1/0")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			direct, shim := dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)
			direct.t, shim.t = t, t
			want, counts := direct.runStepsAtLeast(tc.steps, nil)
			c.Exec(t, "DELETE FROM itag")
			got, _ := shim.runStepsAtLeast(tc.steps, counts) // see compare
			c.Exec(t, "DELETE FROM itag")
			if got != want {
				t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
			}
			if late := shim.lateReplies(tc.steps); late != "" { // see lateWait
				t.Errorf("after the last step's replies, through the shim: %s", late)
			}
			if strings.Contains(want, "<") {
				t.Errorf("PostgreSQL: %s", want)
			}
		})
	}
}
