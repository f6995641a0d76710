package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPartUnknownThenQuery: a simple Query inside an extended request after a part sent at a
// Flush whose outcome or transaction the shim cannot tell: the part holds no COPY FROM STDIN,
// whose end the shim probes (endCopyPart), or went on after an extended COPY's CopyDone
// (unitState.wentOn). PostgreSQL skips the Query when the part failed, and runs it in the
// implicit transaction a ROLLBACK in the part left, committing that at the Query's end.
// queryInRequest took the status of the last ReadyForQuery for the part's: it walked the Query
// after a failed part, which PostgreSQL skipped, and waited for its reply for good ("fails",
// "copy/fails"), and walked it as in the client's block after the part's ROLLBACK, so that
// PostgreSQL committed the Query's row on this database alone ("block/rollback"; also after a
// COPY's part, "copypart/block/rollback"). The shape
// is not supported: the session ends (08P01) with nothing committed, as before d78468c.
func TestPartUnknownThenQuery(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	stmt := func(q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}
	row := func(id int) string { return fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", id) }
	for i, tc := range []string{"fails", "block/rollback", "copy/fails", "copypart/block/rollback"} {
		t.Run(tc, func(t *testing.T) {
			b := 61000 + 100*i
			r := dialRaw(t, s)
			r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			var part []pgproto3.FrontendMessage
			switch tc {
			case "fails":
				part = append(stmt(row(b+1)), stmt(row(b+1))...)
			case "block/rollback":
				if got := r.query("BEGIN"); got != "CZ" {
					t.Fatalf("BEGIN: %q", got)
				}
				part = append(append(stmt(row(b+1)), stmt("ROLLBACK")...), stmt("SELECT 1")...)
			case "copypart/block/rollback":
				// The part's COPY, whose end endCopyPart probes, then a part the walk followed
				// out of the client's block.
				if got := r.query("BEGIN"); got != "CZ" {
					t.Fatalf("BEGIN: %q", got)
				}
				sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
				if got, err := r.until('G'); err != nil {
					t.Fatalf("COPY: %q %v", got, err)
				}
				sendMsgs(t, r, copyRow(b+3), &pgproto3.CopyDone{})
				part = append(stmt("ROLLBACK"), stmt("SELECT 1")...)
			case "copy/fails":
				sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if got, err := r.until('G'); err != nil {
					t.Fatalf("COPY: %q %v", got, err)
				}
				part = append([]pgproto3.FrontendMessage{copyRow(b + 3), &pgproto3.CopyDone{}}, stmt(row(b+3))...)
			}
			part = append(part, &pgproto3.Flush{}, &pgproto3.Query{String: row(b + 2)}, &pgproto3.Sync{})
			sendMsgs(t, r, part...)
			got := r.toEnd()
			if !strings.Contains(got, "E(08P01)") {
				t.Errorf("replies %q, want the session's end (08P01)", got)
			}
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 0 {
				t.Errorf("%d rows committed, peer calls %v", n, peer.take())
			}
			if calls := peer.take(); len(calls) != 0 {
				t.Errorf("peer calls %v", calls)
			}
		})
	}
}
