package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedCopyMidSyncKeepsUnnamed: the statement the shim sends behind a passed-through
// extended COPY whose client sent a Sync during it (copyMark) must leave the client's unnamed
// prepared statement alone: PostgreSQL keeps it, and the client may bind it again.
func TestPassedCopyMidSyncKeepsUnnamed(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 1, func(base int) [][]pgproto3.FrontendMessage {
		return [][]pgproto3.FrontendMessage{
			{&pgproto3.Query{String: "BEGIN"}},
			{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{copyRow(base), &pgproto3.Sync{}},
			{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
			// The unnamed statement, bound again.
			{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{copyRow(base + 1), &pgproto3.CopyDone{}, &pgproto3.Sync{}},
			{&pgproto3.Query{String: "COMMIT"}},
		}
	})
}
