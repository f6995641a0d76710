package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtendedCopyDataAhead: copy data sent right behind an extended-protocol Execute of COPY
// FROM STDIN, before any Flush or Sync (without waiting for the CopyInResponse), which
// PostgreSQL takes: it runs the Execute as it reads it, flushes its CopyInResponse and reads
// the data. Relayed to the backend ahead of the Parse, Bind and Execute the shim held for the
// Sync, the data was dropped (copy messages outside a COPY are ignored) and the session hung;
// the shim then ended the session with 08P01 ("not supported"). The held messages now go as a
// part, as at a Flush of the client's, and the client gets what PostgreSQL sends, the COPY's
// transaction one of the shim's dual commits (or none, failed). "block": in the client's
// block; "insert": an INSERT after the COPY in the request; "first": one before it; "bad": a
// bad row; "fail": a CopyFail; "missing": a COPY that fails before it opens.
func TestExtendedCopyDataAhead(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"wrap", "wrap/insert", "wrap/first", "wrap/bad", "wrap/fail", "wrap/missing", "wrap/insert/bad",
		"block", "block/insert", "block/bad", "block/fail", "block/missing"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			block := strings.HasPrefix(tc, "block")
			failed := strings.Contains(tc, "bad") || strings.Contains(tc, "fail") || strings.Contains(tc, "missing")
			commits := 1
			if failed {
				commits = 0
			}
			passedCopySteps(t, commits, func(b int) [][]pgproto3.FrontendMessage {
				copySQL := "COPY acct FROM STDIN"
				if strings.Contains(tc, "missing") {
					copySQL = "COPY no_such_table FROM STDIN"
				}
				var req []pgproto3.FrontendMessage
				if strings.Contains(tc, "first") {
					req = append(req, &pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5)}, &pgproto3.Bind{}, &pgproto3.Execute{})
				}
				req = append(req, &pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}, copyRow(b), copyRow(b+1))
				switch {
				case strings.Contains(tc, "bad"):
					req = append(req, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{})
				case strings.Contains(tc, "fail"):
					req = append(req, &pgproto3.CopyFail{Message: "client gave up"})
				default:
					req = append(req, &pgproto3.CopyDone{})
				}
				if strings.Contains(tc, "insert") {
					req = append(req, &pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+6)}, &pgproto3.Bind{}, &pgproto3.Execute{})
				}
				req = append(req, &pgproto3.Sync{})
				steps := [][]pgproto3.FrontendMessage{req}
				if block {
					steps = append([][]pgproto3.FrontendMessage{{&pgproto3.Query{String: "BEGIN"}}}, append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}})...)
				}
				return append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}})
			})
		})
	}
}
