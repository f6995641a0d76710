package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestWrappedExtCopyFlushBadRow: an extended COPY FROM STDIN the shim wraps, with a bad row
// (in the data, or the last one without its newline, failing at the CopyDone), ended with
// CopyDone and a Flush, then the Sync. PostgreSQL answers the Sync with ReadyForQuery status
// 'I' (the COPY's implicit transaction rolled back); the shim answered with 'E', the status of
// its own block, which the client took for a failed transaction block.
func TestWrappedExtCopyFlushBadRow(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"mid", "end", "mid/flushes", "mid/waited", "end/waited", "mid/flushwaited", "request/mid", "request/end", "request/good", "request/midwaited", "request/midsync"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			commits := 1 // the INSERT after; the COPY failed
			if tc == "request/good" {
				commits = 2 // and the COPY's, its rows shipped
			}
			passedCopySteps(t, commits, func(b int) [][]pgproto3.FrontendMessage {
				var data []pgproto3.FrontendMessage
				switch tc {
				case "mid":
					data = []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{}, &pgproto3.Flush{}}
				case "end":
					data = []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad")}, &pgproto3.CopyDone{}, &pgproto3.Flush{}}
				case "mid/flushes":
					data = []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Flush{}, &pgproto3.CopyDone{}, &pgproto3.Flush{}, &pgproto3.Flush{}}
				}
				steps := [][]pgproto3.FrontendMessage{
					{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					data,
				}
				switch tc {
				case "mid/waited":
					steps = append(steps[:1], []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}}, []pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Flush{}})
				case "end/waited":
					steps = append(steps[:1], []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad")}}, []pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Flush{}})
				case "request/mid", "request/end", "request/good", "request/midwaited", "request/midsync":
					row := map[string]string{"request/mid": "bad\n", "request/end": "bad", "request/good": fmt.Sprintf("%d\t0\n", b+1), "request/midwaited": "bad\n", "request/midsync": "bad\n"}[tc]
					steps = [][]pgproto3.FrontendMessage{
						{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
						{copyRow(b), &pgproto3.CopyData{Data: []byte(row)}, &pgproto3.CopyDone{}},
					}
					switch tc {
					case "request/midwaited":
						steps = append(steps[:1], []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte(row)}}, []pgproto3.FrontendMessage{&pgproto3.CopyDone{}})
					case "request/midsync":
						steps = append(steps[:1], []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte(row)}, &pgproto3.Sync{}}, []pgproto3.FrontendMessage{&pgproto3.CopyDone{}})
					}
				case "mid/flushwaited":
					steps = append(steps[:1], []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Flush{}}, []pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Flush{}})
				}
				return append(steps, [][]pgproto3.FrontendMessage{
					{&pgproto3.Sync{}},
					{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				}...)
			})
		})
	}
}
