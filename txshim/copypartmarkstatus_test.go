package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartSyncsThenRequestPiped: an extended COPY FROM STDIN the shim wraps, sent up to a
// Flush (its part in the shim's block), whose client sends a bad row and a Sync, reads their
// replies, and then sends another Sync during the data and a request behind it in one write.
// PostgreSQL, its COPY's implicit transaction rolled back at the first Sync, answers the
// second with ReadyForQuery status 'I' too. The shim's copyMark (endCopyPart), sent at the
// request, may come before the backend's answer to that Sync: serverLoop passed it on as the
// mark's, with the backend's status, 'E' (the shim's block failed).
func TestCopyPartSyncsThenRequestPiped(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 2, func(b int) [][]pgproto3.FrontendMessage {
		return [][]pgproto3.FrontendMessage{
			{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
			{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}},
			{copyRow(b + 1), &pgproto3.Sync{}, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+3)}},
			{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
			{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
			{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
		}
	})
}
