package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestWrappedExtCopyDoneThenQuery: an extended COPY FROM STDIN the shim wraps whose CopyDone is
// followed by a simple Query rather than the COPY's Sync. PostgreSQL runs the Query in the
// COPY's implicit transaction and commits both at its end. The shim relayed the Query into its
// own block, passed on its ReadyForQuery, and at the client's next Sync failed its commit check
// ("tandem: commit check failed: no row", XX000), sent the client the replies to its own
// statements (CloseComplete, ParseComplete, ROLLBACK) and rolled the COPY back: the client was
// told the COPY and the Query ran, and its session was out of step for good. The shape is not
// supported: the session ends with a reason, nothing committed.
func TestWrappedExtCopyDoneThenQuery(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.until('G'); err != nil {
		t.Fatalf("COPY: %q %v", got, err)
	}
	sendMsgs(t, r, copyRow(88001), &pgproto3.CopyDone{}, &pgproto3.Query{String: "SELECT 42"})
	var seen []string
	for {
		m, err := r.fe.Receive()
		if err != nil {
			break
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			seen = append(seen, e.Code+" "+e.Message)
			if e.Severity == "FATAL" {
				break
			}
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			// A reply the client may take for the Query's: it sends its Sync.
			sendMsgs(t, r, &pgproto3.Sync{})
		}
	}
	if len(seen) != 1 || !strings.HasPrefix(seen[0], "08P01 ") {
		t.Errorf("errors %q, want the session's end (08P01) alone", seen)
	}
	db := c.Open(t, c.Database())
	var n int
	if err := db.QueryRow("SELECT count(*) FROM acct WHERE id = 88001").Scan(&n); err != nil || n != 0 {
		t.Errorf("rows of the COPY: %d %v, want none", n, err)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v", calls)
	}
}

// TestWrappedExtCopyFailedThenQuery: an extended COPY FROM STDIN the shim wraps fails (a bad
// row in the data, or one without its newline at the CopyDone), and the client then sends a
// simple Query before its Sync. PostgreSQL
// skips everything up to the Sync after the error, the Query too, and answers the Sync; the
// shim ended the session (08P01) at that Query as for one behind a COPY that succeeded.
func TestWrappedExtCopyFailedThenQuery(t *testing.T) {
	t.Parallel()
	// ext: an extended request (of DDL) instead of the Query, skipped alike
	// (TestExtCopyDoneThenExtRequest).
	for _, tc := range []string{"mid", "end", "mid/ext", "end/ext"} {
		t.Run(tc, func(t *testing.T) {
			t.Parallel()
			passedCopySteps(t, 1, func(b int) [][]pgproto3.FrontendMessage {
				q := []pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 42"}}
				if strings.HasSuffix(tc, "/ext") {
					q = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: fmt.Sprintf("CREATE TABLE zz%d (id int)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{}}
				}
				var data []pgproto3.FrontendMessage
				switch strings.TrimSuffix(tc, "/ext") {
				case "mid":
					data = append([]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{}}, q...)
				case "end":
					data = append([]pgproto3.FrontendMessage{copyRow(b), &pgproto3.CopyData{Data: []byte("bad")}, &pgproto3.CopyDone{}}, q...)
				}
				return [][]pgproto3.FrontendMessage{
					{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					append(data, &pgproto3.Sync{}),
					{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				}
			})
		})
	}
}
