package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedExtCopyMidSyncThenRequest: an extended COPY FROM STDIN passed through (in the
// client's own block) whose client sends Syncs during the data, then its CopyDone and another
// request (extended or simple) rather than the COPY's Sync. PostgreSQL ignores the Syncs while
// it copies and ends the COPY at the CopyDone; the request runs after it. After a bad row it
// answers each Sync after the row, and runs the request; with none after it (or at a last row
// without its newline, which fails at the CopyDone), it skips the request up to the next Sync.
// piped: the data, the CopyDone and the request go in one write.
func TestPassedExtCopyMidSyncThenRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"ext", "simple", "ext/bad", "simple/bad", "ext/end", "simple/end", "ext/two", "simple/two",
		"ext/late", "simple/late", "ext/piped", "simple/bad/piped", "ext/end/piped", "simple/late/piped"} {
		next, _, _ := strings.Cut(tc, "/")
		shape, piped := strings.CutSuffix(tc, "/piped")
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			commits := 1 // the block's, the COPY's rows in it
			if strings.HasSuffix(shape, "/bad") || strings.HasSuffix(shape, "/end") || strings.HasSuffix(shape, "/late") {
				commits = 0 // the block failed at the COPY
			}
			passedCopySteps(t, commits, func(base int) [][]pgproto3.FrontendMessage {
				req := []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 42"}}
				if next == "ext" {
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 42"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				}
				data := []pgproto3.FrontendMessage{copyRow(base), &pgproto3.Sync{}}
				switch {
				case strings.HasSuffix(shape, "/late"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")})
				case strings.HasSuffix(shape, "/bad"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{})
				case strings.HasSuffix(shape, "/end"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad")})
				case strings.HasSuffix(shape, "/two"):
					data = append(data, copyRow(base+1), &pgproto3.Sync{})
				}
				end := append([]pgproto3.FrontendMessage{&pgproto3.CopyDone{}}, req...)
				if piped {
					data, end = append(data, end...), nil
				}
				return [][]pgproto3.FrontendMessage{
					{&pgproto3.Query{String: "BEGIN"}},
					{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					data,
					end,
					{&pgproto3.Sync{}},
					{&pgproto3.Query{String: "SELECT 43"}},
					{&pgproto3.Query{String: "COMMIT"}},
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
				}
			})
		})
	}
}
