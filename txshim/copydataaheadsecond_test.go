package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyDataAheadOfSecondResponse: an extended request sent up to Flushes, in the shim's
// block, with two COPY FROM STDIN parts, whose client sends the second COPY's data and
// CopyDone right behind its part, before that COPY's CopyInResponse (TestCopyDataAheadOfResponse
// for the request's second COPY). awaitCopyOpen took the first COPY's CopyInResponse
// (copyStarts > 0, kept while the request's parts run) for the second's, and waited for
// nothing: the CopyDone was counted before its COPY opened, and the session hung, the
// request never answered.
func TestCopyDataAheadOfSecondResponse(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 1, func(b int) [][]pgproto3.FrontendMessage {
		return [][]pgproto3.FrontendMessage{
			{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
			{copyRow(b), &pgproto3.CopyDone{}, &pgproto3.Flush{}},
			{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}, copyRow(b + 1), &pgproto3.CopyDone{}, &pgproto3.Sync{}},
			{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
		}
	})
}
