package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSavepointOutsideBlockMessage: a savepoint command in the implicit transaction of a write
// the shim wraps in its own block is refused, as PostgreSQL refuses it there; PostgreSQL names
// the command in its message (RequireTransactionBlock), and the shim named all three at once.
func TestSavepointOutsideBlockMessage(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	r := dialRaw(t, s)
	for _, tc := range []struct{ stmt, want string }{
		{"SAVEPOINT a", "SAVEPOINT can only be used in transaction blocks"},
		{"release a", "RELEASE SAVEPOINT can only be used in transaction blocks"},
		{"/* c */ ROLLBACK WORK TO a", "ROLLBACK TO SAVEPOINT can only be used in transaction blocks"},
	} {
		for _, ext := range []bool{false, true} {
			if ext {
				sendMsgs(t, r, &pgproto3.Parse{Query: "INSERT INTO acct VALUES (70, 1)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
					&pgproto3.Parse{Query: tc.stmt}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			} else {
				sendMsgs(t, r, &pgproto3.Query{String: "INSERT INTO acct VALUES (70, 1); " + tc.stmt})
			}
			var msg string
			for {
				m, err := r.fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if e, ok := m.(*pgproto3.ErrorResponse); ok {
					msg = e.Code + " " + e.Message
				}
				if _, ok := m.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
			if want := "25P01 " + tc.want; msg != want {
				t.Errorf("%s after a write outside a block (extended %v): %q, want %q", tc.stmt, ext, msg, want)
			}
		}
	}
	if got := r.query("SELECT count(*) FROM acct WHERE id = 70"); got != "TDCZ" {
		t.Errorf("after: %q", got)
	}
}
