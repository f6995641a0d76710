package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedExtCopyDoneFlushThenRequest: an extended COPY FROM STDIN passed through (in the
// client's block) whose client sends its CopyDone and a Flush, and then another request rather
// than the COPY's Sync; with Syncs during the data or none, the COPY good or failed before or
// after them. PostgreSQL flushes at the Flush and goes on as without it (copyEndUnsynced's
// cases). The shim took the Flush for the start of an extended request of the client's: the
// COPY's end was no longer told from the request, whose replies the client did not get (the
// session hung), or a ReadyForQuery of the COPY's for them.
func TestPassedExtCopyDoneFlushThenRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"good", "bad", "syncs/good", "syncs/bad", "syncs/late", "good/query", "syncs/late/query"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			commits := 1 // the block's, the COPY's rows in it
			if strings.Contains(tc, "bad") || strings.Contains(tc, "late") {
				commits = 0 // the block failed at the COPY
			}
			passedCopySteps(t, commits, func(base int) [][]pgproto3.FrontendMessage {
				var data []pgproto3.FrontendMessage
				if strings.HasPrefix(tc, "syncs/") {
					data = append(data, copyRow(base), &pgproto3.Sync{})
				}
				switch {
				case strings.Contains(tc, "bad") && strings.HasPrefix(tc, "syncs/"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{})
				case strings.Contains(tc, "bad"), strings.Contains(tc, "late"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")})
				default:
					data = append(data, copyRow(base+1))
				}
				req := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 42"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				if strings.HasSuffix(tc, "/query") {
					req = []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 42"}}
				}
				return [][]pgproto3.FrontendMessage{
					{&pgproto3.Query{String: "BEGIN"}},
					{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					data,
					{&pgproto3.CopyDone{}, &pgproto3.Flush{}},
					req,
					{&pgproto3.Sync{}},
					{&pgproto3.Query{String: "SELECT 43"}},
					{&pgproto3.Query{String: "COMMIT"}},
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
				}
			})
		})
	}
}
