package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartSyncThenDoneRequest: an extended COPY FROM STDIN sent up to a Flush (the shim's
// part sent unanswered), whose client sends a Sync during the data (which PostgreSQL ignores
// while it copies), then its CopyDone and more of the request, up to its Sync, in one write.
// A COPY that ended well goes on with the request, the COPY's rows committed with it.
// endCopyPart's probe (copyPartProbe) took the COPY for failed behind the client's Sync, none
// of the client's Syncs answered: it rolled the shim's block back and skipped the rest of the
// request, the COPY's row and the INSERT lost while the client was answered as if they ran;
// in the client's block, the probe's Describe failed the block. "bad": a bad row before the
// Sync, which PostgreSQL answers, and runs the request on its own; "late": a bad row after
// the Sync, and PostgreSQL skips the request up to its Sync.
func TestCopyPartSyncThenDoneRequest(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"good/parse", "good/describe", "block/good/describe", "bad/parse", "late/parse"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			block := strings.HasPrefix(tc, "block/")
			// The COPY's with the rest of its request (or the INSERT alone), and the DELETE's;
			// none when both were skipped, the DELETE finding no row.
			commits := 2
			if strings.HasPrefix(tc, "late/") {
				commits = 0
			}
			passedCopySteps(t, commits, func(b int) [][]pgproto3.FrontendMessage {
				data := []pgproto3.FrontendMessage{copyRow(b), &pgproto3.Sync{}}
				switch {
				case strings.HasPrefix(tc, "bad/"):
					data = []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}}
				case strings.HasPrefix(tc, "late/"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")})
				}
				rest := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+3)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				if strings.HasSuffix(tc, "/describe") {
					rest = []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}}
				}
				var steps [][]pgproto3.FrontendMessage
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}})
				}
				steps = append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
					append(append(data, &pgproto3.CopyDone{}), rest...),
				)
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}})
				}
				return append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("DELETE FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}})
			})
		})
	}
}
