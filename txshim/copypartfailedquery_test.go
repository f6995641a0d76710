package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartFailedThenQuery: an extended COPY FROM STDIN sent up to a Flush (a part), whose
// COPY fails — a bad row, the client's CopyFail, a table that does not exist — and whose
// client then sends a simple Query before the request's Sync, with no Sync during the COPY.
// PostgreSQL skips the Query, as all else up to the Sync after the error, and answers that Sync.
// The shim took the Query for one inside an open extended request and ended the session (08P01,
// not supported); it now asks the backend whether the part failed (copyPartProbeImplicit's
// probe, harmless either way) and skips the Query when it did. "call": a procedure before the
// COPY, which then runs in the request's implicit transaction (copyPartImplicit); "block": in
// the client's block; else in the shim's.
func TestCopyPartFailedThenQuery(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cpq(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	for _, tc := range []string{"call/bad", "call/fail", "call/missing", "wrap/bad", "wrap/fail", "wrap/missing", "block/bad", "block/fail", "wrap/bad/flush"} {
		t.Run(tc, func(t *testing.T) {
			passedCopyStepsOn(t, c, peer, s, 0, func(b int) [][]pgproto3.FrontendMessage {
				copySQL := "COPY acct FROM STDIN"
				if strings.Contains(tc, "missing") {
					copySQL = "COPY no_such_table FROM STDIN"
				}
				var part []pgproto3.FrontendMessage
				if strings.HasPrefix(tc, "call") {
					part = append(part, &pgproto3.Parse{Query: fmt.Sprintf("CALL cpq(%d)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{})
				}
				part = append(part, &pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
				var data []pgproto3.FrontendMessage
				switch {
				case strings.Contains(tc, "bad"):
					data = []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{}}
				case strings.Contains(tc, "fail"):
					data = []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyFail{Message: "client gave up"}}
				}
				if strings.HasSuffix(tc, "/flush") {
					data = append(data, &pgproto3.Flush{})
				}
				steps := [][]pgproto3.FrontendMessage{part}
				if data != nil {
					steps = append(steps, data)
				}
				steps = append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5)}},
					[]pgproto3.FrontendMessage{&pgproto3.Sync{}})
				if strings.HasPrefix(tc, "block") {
					steps = append([][]pgproto3.FrontendMessage{{&pgproto3.Query{String: "BEGIN"}}}, append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}})...)
				}
				return append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}})
			})
		})
	}
}
