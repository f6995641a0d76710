package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartFailedThenQueryPiped: TestCopyPartFailedThenQuery's shape (a part's COPY FROM
// STDIN that fails, a simple Query before the request's Sync, skipped up to it), the client
// sending everything after the part at once, with requests after the Sync: an extended
// INSERT, a simple Query, another COPY part, a FunctionCall skipped as the Query is. The
// replies and the dual commits must be PostgreSQL's (the skip ends at the Sync, no further).
func TestCopyPartFailedThenQueryPiped(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cpqp(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	for k, tc := range []string{"wrap/ext", "wrap/query", "wrap/copy", "wrap/func", "call/ext", "call/copy", "block/ext", "wrap/fail/ext"} {
		t.Run(tc, func(t *testing.T) {
			commits := 1
			if strings.HasPrefix(tc, "block") {
				commits = 0
			}
			passedCopyStepsOn(t, c, peer, s, commits, func(b int) [][]pgproto3.FrontendMessage {
				b += 1000 * (k + 1) // ids of their own: the subtests share the database
				var part []pgproto3.FrontendMessage
				if strings.HasPrefix(tc, "call") {
					part = append(part, &pgproto3.Parse{Query: fmt.Sprintf("CALL cpqp(%d)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{})
				}
				part = append(part, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
				rest := []pgproto3.FrontendMessage{copyRow(b + 1)}
				if strings.Contains(tc, "/fail/") {
					rest = append(rest, &pgproto3.CopyFail{Message: "client gave up"})
				} else {
					rest = append(rest, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{})
				}
				rest = append(rest, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5)})
				if strings.HasSuffix(tc, "/func") {
					rest = append(rest, &pgproto3.FunctionCall{Function: 1})
				}
				rest = append(rest, &pgproto3.Sync{})
				switch {
				case strings.HasSuffix(tc, "/query"):
					rest = append(rest, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+6)})
				case strings.HasSuffix(tc, "/copy"):
					rest = append(rest, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{},
						copyRow(b+6), &pgproto3.CopyDone{}, &pgproto3.Sync{})
				default:
					rest = append(rest, &pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+6)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				}
				steps := [][]pgproto3.FrontendMessage{part, rest}
				if strings.HasPrefix(tc, "block") {
					steps = append([][]pgproto3.FrontendMessage{{&pgproto3.Query{String: "BEGIN"}}}, append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}})...)
				}
				return append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}})
			})
		})
	}
}
