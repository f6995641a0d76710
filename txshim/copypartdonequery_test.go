package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartDoneThenQuery: an extended COPY FROM STDIN sent up to a Flush (a part) whose COPY
// ends well, the client then sending a simple Query before the request's Sync. PostgreSQL runs
// the Query in the request's transaction, behind the part: in the implicit one (here the
// shim's block) it commits the COPY's rows and the Query's at the Query's end, or rolls both
// back at its error, and answers the Sync after with a ReadyForQuery of its own; in the
// client's block the Query runs in that. The shim ended the session (08P01, not supported).
// Now it walks the Query in the part's transaction, a block of the shim's committed at the
// Query's end: one dual commit for the COPY's rows and the Query's writes.
func TestCopyPartDoneThenQuery(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for i, tc := range []string{"wrap", "wrap/error", "wrap/ddl", "wrap/two", "block"} {
		t.Run(tc, func(t *testing.T) {
			commits, want := 1, 2
			var ddl string
			base := extCopySteps(t, c, s, 7000+1000*i, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
				var before [][]pgproto3.FrontendMessage
				q := fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)
				switch tc {
				case "wrap/error":
					q = fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+1) // the COPY's row again
					commits, want = 0, 0
				case "wrap/ddl":
					ddl = fmt.Sprintf("CREATE TABLE zq%d (id int)", b)
					q, want = ddl, 1
				case "wrap/two":
					q = fmt.Sprintf("INSERT INTO acct VALUES (%d, 0); INSERT INTO acct VALUES (%d, 0)", b+2, b+3)
					want = 3
				case "block":
					before = [][]pgproto3.FrontendMessage{{&pgproto3.Query{String: "BEGIN"}}}
				}
				part := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}
				after := []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{}, &pgproto3.Query{String: q}, &pgproto3.Sync{}}
				if tc == "block" {
					after = append(after, &pgproto3.Query{String: "COMMIT"})
				}
				after = append(after, &pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)})
				return before, part, after
			})
			checkDual(t, peer.take(), commits)
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", base, base+9)); n != want {
				t.Errorf("%d rows committed, want %d", n, want)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
			if ddl != "" {
				var recorded int
				if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM tandem.ddl WHERE stmt = $1", ddl).Scan(&recorded); err != nil {
					t.Fatal(err)
				}
				if recorded != 1 {
					t.Errorf("%s recorded %d times in tandem.ddl, want once", ddl, recorded)
				}
			}
		})
	}
}
