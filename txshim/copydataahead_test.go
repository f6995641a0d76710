package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyDataAheadOfResponse: a client that sends its COPY FROM STDIN's data and CopyDone in
// the write of the COPY's request, not waiting for the CopyInResponse (a simple Query, an
// extended request with its Sync, or one up to a Flush, "part"; in the client's block or
// wrapped by the shim), must get what PostgreSQL sends, and its transaction committed as one
// of the shim's dual commits. Read before the CopyInResponse, the data was taken for data
// after no COPY: a passed-through extended COPY's entry then waited for a ReadyForQuery that
// never came, and the client hung at its COMMIT; a wrapped part's COPY was never answered.
// "missing": the COPY fails before it opens, and PostgreSQL ignores the data. "syncfirst": a
// Sync before the data, which belongs to the COPY as the data does, was taken for a request's.
func TestCopyDataAheadOfResponse(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"block/query", "block/ext", "wrap/query", "wrap/ext", "block/query/bad", "block/ext/bad", "wrap/query/bad", "wrap/ext/bad", "block/part", "wrap/part", "block/part/bad", "wrap/part/bad", "block/twocopies", "block/ext/missing", "wrap/part/missing", "wrap/query/missing", "block/query/syncfirst", "block/ext/syncfirst", "wrap/query/syncfirst", "wrap/part/syncfirst"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			block := strings.HasPrefix(tc, "block/")
			bad := strings.HasSuffix(tc, "/bad")
			copySQL := "COPY acct FROM STDIN"
			if strings.HasSuffix(tc, "/missing") {
				copySQL = "COPY no_such_table FROM STDIN" // fails: no COPY opens
				bad = true
			}
			commits := 2 // the COPY's (its block's) and the INSERT after
			if bad {
				commits = 1
			}
			passedCopySteps(t, commits, func(b int) [][]pgproto3.FrontendMessage {
				ext := strings.Contains(tc, "/ext") || strings.Contains(tc, "/part")
				req := []pgproto3.FrontendMessage{&pgproto3.Query{String: copySQL}}
				switch {
				case strings.Contains(tc, "/ext"):
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				case strings.Contains(tc, "/part"):
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}
				case strings.Contains(tc, "/twocopies"):
					req = []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY acct FROM STDIN; COPY acct FROM STDIN"}, copyRow(b + 1), &pgproto3.CopyDone{}}
				}
				if strings.HasSuffix(tc, "/syncfirst") {
					// A Sync before the data, which PostgreSQL ignores in the COPY.
					req = append(req, &pgproto3.Sync{})
				}
				req = append(req, copyRow(b))
				if strings.HasSuffix(tc, "/bad") {
					req = append(req, &pgproto3.CopyData{Data: []byte("bad\n")})
				}
				req = append(req, &pgproto3.CopyDone{})
				if ext {
					req = append(req, &pgproto3.Sync{})
				}
				var steps [][]pgproto3.FrontendMessage
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}})
				}
				steps = append(steps, req)
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}})
				}
				return append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				)
			})
		})
	}
}
