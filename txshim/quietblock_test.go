package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRefusalKeepsQuietBlock: a statement the shim refuses (PREPARE TRANSACTION here) in an
// extended request, behind a part sent unanswered (before a Flush) of a transaction block the
// client opened, fails that block as any error does: the client may roll back to a savepoint
// and commit what came before. The shim told the block's owner by the 25001 warning its own
// BEGIN draws; a client that set client_min_messages = error gets none, and the shim took the
// client's block for one it began, rolled it back and said the session was idle: the client's
// ROLLBACK TO SAVEPOINT failed, and its writes were gone.
func TestRefusalKeepsQuietBlock(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	for _, tc := range []struct {
		name  string
		query string   // a simple Query first ("" none)
		part1 []string // sent before a Flush
	}{
		{"block opened in the part", "", []string{"BEGIN", "INSERT INTO acct VALUES (1, 0)", "SAVEPOINT a"}},
		{"block opened before, read in the part", "BEGIN; INSERT INTO acct VALUES (1, 0); SAVEPOINT a", []string{"SELECT 1"}},
	} {
		for _, quiet := range []string{"notice", "error"} {
			t.Run(fmt.Sprintf("%s, client_min_messages %s", tc.name, quiet), func(t *testing.T) {
				c.Exec(t, "DELETE FROM acct")
				r := dialRaw(t, s)
				r.query("SET client_min_messages = " + quiet)
				if tc.query != "" {
					r.query(tc.query)
				}
				for _, q := range tc.part1 {
					r.stmt(q)
				}
				r.flush('C')
				for range tc.part1[1:] {
					if got, err := r.until('C'); err != nil {
						t.Fatalf("part 1: %s %v", got, err)
					}
				}
				r.stmt("PREPARE TRANSACTION 'x'")
				r.fe.Send(&pgproto3.Sync{})
				if err := r.fe.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := r.replies(); got != "1 2 E(0A000) Z(E)" {
					t.Errorf("refused statement: replies %s, want the client's block failed (status E)", got)
				}
				r.fe.Send(&pgproto3.Query{String: "ROLLBACK TO SAVEPOINT a; COMMIT"})
				if err := r.fe.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := r.replies(); got != "C(ROLLBACK) C(COMMIT) Z(I)" {
					t.Errorf("ROLLBACK TO SAVEPOINT a; COMMIT: replies %s", got)
				}
				if n := rowCount(t, c, "true"); n != 1 {
					t.Errorf("%d rows committed, want the one written before the savepoint", n)
				}
			})
		}
	}
}
