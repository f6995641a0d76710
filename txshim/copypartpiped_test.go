package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartBadRowSyncRequestPiped: an extended COPY FROM STDIN sent up to a Flush (the
// shim's part sent unanswered), whose client then sends a bad row, a Sync and another request
// in one write, not waiting for the Sync's ReadyForQuery. PostgreSQL ends the COPY's request
// at that Sync (its implicit transaction rolled back) and runs the request on its own, or,
// in the client's block, fails it with the block; after a bad row behind the client's last
// Sync ("late") it skips the request up to the next Sync. The shim passed the request on into
// its own block, failed since the bad row: the request failed (25P02) where PostgreSQL ran it.
func TestCopyPartBadRowSyncRequestPiped(t *testing.T) {
	t.Parallel()
	for _, tc := range []string{"wrap/query", "wrap/ext", "block/query", "block/ext", "wrap/late/query", "wrap/late/ext", "wrap/syncs/query", "wrap/bind", "wrap/close"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			block := strings.HasPrefix(tc, "block/")
			late := strings.Contains(tc, "/late/")
			commits := 2 // the request's INSERT and the one after
			if block || late || tc == "wrap/bind" {
				commits = 1 // the one after the block, or the request skipped, or none
			}
			passedCopySteps(t, commits, func(b int) [][]pgproto3.FrontendMessage {
				ins := fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+3)
				req := []pgproto3.FrontendMessage{&pgproto3.Query{String: ins}}
				switch {
				case strings.HasSuffix(tc, "/ext"):
					req = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: ins}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				case tc == "wrap/bind":
					// The unnamed statement, the COPY's, bound again: PostgreSQL runs it, a
					// COPY of its own, which the CopyDone below ends.
					req = []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				case tc == "wrap/close":
					req = []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}, &pgproto3.Query{String: ins}}
				}
				data := []pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}}
				switch {
				case late:
					data = []pgproto3.FrontendMessage{copyRow(b), &pgproto3.Sync{}, &pgproto3.CopyData{Data: []byte("bad\n")}}
				case strings.Contains(tc, "/syncs/"):
					data = append(data, copyRow(b+1), &pgproto3.Sync{})
				}
				var steps [][]pgproto3.FrontendMessage
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "BEGIN"}})
				}
				steps = append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
					append(data, req...),
					[]pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
				)
				if block {
					steps = append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "ROLLBACK"}})
				}
				return append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				)
			})
		})
	}
}

// TestCopyPartGoodRowSyncRequestPiped: as TestCopyPartBadRowSyncRequestPiped with good rows:
// PostgreSQL ignores the Sync while it copies, and ends the session at the request's first
// message (08P01, naming its type). The shim's probe of whether the COPY failed must end it
// the same way, with the same words.
func TestCopyPartGoodRowSyncRequestPiped(t *testing.T) {
	t.Parallel()
	c, _, dual := dualShim(t)
	for _, tc := range []string{"query", "parse", "bind", "close"} {
		t.Run(tc, func(t *testing.T) {
			var got [2]string
			for i, via := range []string{"PostgreSQL", "shim"} {
				r := dialVia(t, via, c, dual)
				sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
				if seen, err := r.until('G'); err != nil {
					t.Fatalf("%s: COPY: %q %v", via, seen, err)
				}
				req := map[string][]pgproto3.FrontendMessage{
					"query": {&pgproto3.Query{String: "SELECT 42"}},
					"parse": {&pgproto3.Parse{Query: "SELECT 42"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					"bind":  {&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					"close": {&pgproto3.Close{ObjectType: 'S'}, &pgproto3.Sync{}},
				}[tc]
				sendMsgs(t, r, append([]pgproto3.FrontendMessage{copyRow(7000 + i), &pgproto3.Sync{}}, req...)...)
				r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				var out strings.Builder
				for {
					m, err := r.fe.Receive()
					if err != nil {
						break
					}
					out.WriteString(quietName(m))
					if e, ok := m.(*pgproto3.ErrorResponse); ok {
						out.WriteString("[" + e.Severity + " " + e.Message + "]")
					}
				}
				got[i] = out.String()
			}
			if got[0] != got[1] {
				t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
			}
		})
	}
}
