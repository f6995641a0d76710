package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRefusalKeepsRecoveredBlock: the client's block failed, and a part sent unanswered (before
// a Flush) rolled it back to a savepoint, which makes it a block in progress again. A statement
// the shim refuses after that part fails the client's block as any error does; the shim must
// not take the block for one its BEGIN opened (the status it knew was 'E', not 'I') and roll it
// back: a client at client_min_messages = error gets no 25001 warning to tell it.
func TestRefusalKeepsRecoveredBlock(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	for _, quiet := range []string{"notice", "error"} {
		for _, sep := range []bool{false, true} {
			t.Run(fmt.Sprintf("client_min_messages %s, failure in own request %v", quiet, sep), func(t *testing.T) {
				c.Exec(t, "DELETE FROM acct")
				r := dialRaw(t, s)
				r.query("SET client_min_messages = " + quiet)
				if sep {
					r.query("BEGIN; INSERT INTO acct VALUES (1, 0); SAVEPOINT a")
					r.query("SELECT 1/0")
				} else {
					r.query("BEGIN; INSERT INTO acct VALUES (1, 0); SAVEPOINT a; SELECT 1/0")
				}
				r.stmt("ROLLBACK TO SAVEPOINT a")
				r.flush('C')
				r.stmt("SELECT 1")
				r.stmt("PREPARE TRANSACTION 'x'")
				r.fe.Send(&pgproto3.Sync{})
				if err := r.fe.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := r.replies(); got != "1 2 D[\"1\"] C(SELECT 1) 1 2 E(0A000) Z(E)" {
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
