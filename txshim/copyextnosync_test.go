package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedExtCopyDoneThenRequest: an extended COPY FROM STDIN in the client's own block whose
// CopyDone is followed by another request (extended or simple) rather than the COPY's Sync.
// PostgreSQL ignored the COPY's Sync during the data, so it answers the COPY and the next
// request with one ReadyForQuery, the latter's; after a COPY that failed at its end (a last row
// without its newline) it skips what the client sends up to its next Sync. The shim's entry for
// the COPY took that one ReadyForQuery and the next request's entry never got one: the session
// hung. Also the same shapes for a COPY the shim wraps (no BEGIN).
func TestPassedExtCopyDoneThenRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"ext", "simple", "ext/bad", "simple/bad", "ext/wrapped", "ext/wrapped/bad"} {
		next, _, _ := strings.Cut(tc, "/")
		bad, wrapped := strings.Contains(tc, "bad"), strings.Contains(tc, "wrapped")
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			commits := 1 // the block's, or the COPY's own, its rows shipped
			if bad {
				commits = 0
			}
			passedCopySteps(t, commits, func(base int) [][]pgproto3.FrontendMessage {
				req := []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 42"}}
				if next == "ext" {
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 42"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				}
				data := []pgproto3.FrontendMessage{copyRow(base)}
				if bad {
					data = append(data, &pgproto3.CopyData{Data: []byte("bad")})
				}
				begin := []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}}
				commit := []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}}
				if wrapped {
					begin, commit = nil, []pgproto3.FrontendMessage{&pgproto3.Sync{}}
				}
				return [][]pgproto3.FrontendMessage{
					begin,
					{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					append(append(data, &pgproto3.CopyDone{}), req...),
					{&pgproto3.Sync{}},
					{&pgproto3.Query{String: "SELECT 43"}},
					commit,
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
				}
			})
		})
	}
}
