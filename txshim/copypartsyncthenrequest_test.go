package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartSyncThenRequest: an extended COPY FROM STDIN sent up to a Flush (no Sync), the
// shim's part sent unanswered, whose client sends a bad row and a Sync, and then, once that
// Sync is answered, another request before the COPY's CopyDone. PostgreSQL ended the COPY's
// request at that Sync (its implicit transaction rolled back, status 'I'), drops the copy
// messages that still come, and runs the request on its own. The shim passed the request
// straight on into its own block, failed since the bad row: the request failed (25P02) where
// PostgreSQL ran it.
func TestCopyPartSyncThenRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"query", "ext", "block/query", "block/ext", "query/syncs"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			block := tc == "block/query" || tc == "block/ext"
			commits := 2 // the request's INSERT and the one after
			if block {
				commits = 1 // the one after the block
			}
			passedCopySteps(t, commits, func(b int) [][]pgproto3.FrontendMessage {
				ins := fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+3)
				req := []pgproto3.FrontendMessage{&pgproto3.Query{String: ins}}
				if tc == "ext" || tc == "block/ext" {
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: ins}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				}
				data := []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}}
				if tc == "query/syncs" {
					data = append(data, copyRow(b+1), &pgproto3.Sync{})
				}
				var steps [][]pgproto3.FrontendMessage
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}})
				}
				steps = append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
					data,
					req,
					[]pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
				)
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}})
				}
				return append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				)
			})
		})
	}
}
