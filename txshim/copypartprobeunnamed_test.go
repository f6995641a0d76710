package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartProbeKeepsUnnamed: an extended COPY FROM STDIN sent up to a Flush (the shim's
// part sent unanswered), whose client sends a row, a Sync, a bad row and a simple Query in one
// write: PostgreSQL, the COPY failed behind the client's last Sync, skips the Query up to the
// next Sync, and the client's unnamed prepared statement (the COPY's) stays. The shim's probe
// of whether the COPY failed (copyPartProbe) ran an empty Query past its own Sync, which
// dropped the unnamed statement: the client's Describe of it after failed (26000).
func TestCopyPartProbeKeepsUnnamed(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"wrap", "block"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			block := tc == "block"
			// No commit: the COPY failed, its block rolled back.
			passedCopySteps(t, 0, func(b int) [][]pgproto3.FrontendMessage {
				var steps [][]pgproto3.FrontendMessage
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}})
				}
				steps = append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
					[]pgproto3.FrontendMessage{copyRow(b), &pgproto3.Sync{}, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Query{String: "SELECT 1"}},
					[]pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
					[]pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}},
				)
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}})
				}
				return steps
			})
		})
	}
}
