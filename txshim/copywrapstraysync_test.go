package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestWrappedExtCopyStraySyncThenRequest: an extended COPY FROM STDIN the shim wraps fails on a
// bad row; the client's Sync during the data gets its ReadyForQuery at once, and the client
// then sends its CopyDone and Sync (which PostgreSQL answers with one more ReadyForQuery) and a
// write, in one go. The relay had ended at the failure, so that Sync passed with no entry
// awaiting its reply: the write's first entry, the shim's BEGIN, took it for its own, every
// later reply one step out of place — the shim's own replies reached the client, its commit
// check failed (XX000).
func TestWrappedExtCopyStraySyncThenRequest(t *testing.T) {
	t.Parallel()
	ext := func(q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}
	for _, name := range []string{"ext", "simple"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			passedCopySteps(t, 2, func(b int) [][]pgproto3.FrontendMessage {
				after := append(ext(fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+1)), &pgproto3.Sync{})
				if name == "simple" {
					after = []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+1)}}
				}
				return [][]pgproto3.FrontendMessage{
					append(ext("COPY acct FROM STDIN"), &pgproto3.Sync{}),
					{&pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}},
					append([]pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Sync{}}, after...),
					{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				}
			})
		})
	}
}
