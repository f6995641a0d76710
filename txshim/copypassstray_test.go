package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedExtCopyStrayAfterDone: a passed-through extended COPY FROM STDIN (in the client's
// block) whose client sends, after its CopyDone, a stray CopyData, CopyDone or CopyFail, which
// PostgreSQL, out of the COPY, ignores; then the COPY's Sync or another request. The shim
// forgot the COPY's pending end at the stray message: a request after it was not told from
// the COPY's end (copyEndUnsynced), and the session hung.
func TestPassedExtCopyStrayAfterDone(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"data/query", "data/ext", "data/sync", "flush/data/query", "done/query", "done/sync", "fail/sync", "syncs/data/query", "bad/data/query", "bad/done/sync", "syncs/bad/data/query", "syncs/bad/fail/ext"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			commits := 1 // the block's, the COPY's row in it
			if strings.Contains(tc, "bad/") {
				commits = 0 // the block failed at the COPY
			}
			passedCopySteps(t, commits, func(base int) [][]pgproto3.FrontendMessage {
				data := []pgproto3.FrontendMessage{copyRow(base)}
				if strings.HasPrefix(tc, "syncs/") {
					data = append(data, &pgproto3.Sync{})
				}
				if strings.Contains(tc, "bad/") {
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")})
					if strings.HasPrefix(tc, "syncs/") {
						data = append(data, &pgproto3.Sync{})
					}
				}
				end := []pgproto3.FrontendMessage{&pgproto3.CopyDone{}}
				if strings.Contains(tc, "flush/") {
					end = append(end, &pgproto3.Flush{})
				}
				switch {
				case strings.Contains(tc, "data/"):
					end = append(end, &pgproto3.CopyData{Data: []byte("stray\n")})
				case strings.Contains(tc, "done/"):
					end = append(end, &pgproto3.CopyDone{})
				case strings.Contains(tc, "fail/"):
					end = append(end, &pgproto3.CopyFail{Message: "stray"})
				}
				var req []pgproto3.FrontendMessage
				switch {
				case strings.HasSuffix(tc, "/query"):
					req = []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}}
				case strings.HasSuffix(tc, "/ext"):
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				default:
					req = []pgproto3.FrontendMessage{&pgproto3.Sync{}}
				}
				return [][]pgproto3.FrontendMessage{
					{&pgproto3.Query{String: "BEGIN"}},
					{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					data,
					append(end, req...),
					{&pgproto3.Query{String: "SELECT 43"}},
					{&pgproto3.Query{String: "COMMIT"}},
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
				}
			})
		})
	}
}
