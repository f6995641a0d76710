package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestWrappedExtCopyDoneThenQuery: an extended COPY FROM STDIN the shim wraps whose CopyDone is
// followed by a simple Query rather than the COPY's Sync. PostgreSQL runs the Query in the
// COPY's implicit transaction and commits both at its end (or rolls both back at its error),
// then answers the Sync on the idle session. The shim relayed the Query into its own block,
// passed on its ReadyForQuery, and at the client's next Sync failed its commit check
// ("tandem: commit check failed: no row", XX000), sent the client the replies to its own
// statements (CloseComplete, ParseComplete, ROLLBACK) and rolled the COPY back: the client was
// told the COPY and the Query ran, and its session was out of step for good. The shim then
// ended the session (08P01, not supported); now the Query is walked in the COPY's block, which
// it commits (TestWrappedExtCopyDoneThenExtWrite, TestCopyPartDoneThenQuery): one dual commit
// for the COPY's rows and the Query's.
func TestWrappedExtCopyDoneThenQuery(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for i, tc := range []string{"select", "insert", "error"} {
		t.Run(tc, func(t *testing.T) {
			commits, want := 1, 2
			base := extCopySteps(t, c, s, 7000+1000*i, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
				q := fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)
				switch tc {
				case "select":
					q, want = "SELECT 42", 1
				case "error":
					q = fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+1) // the COPY's row again
					commits, want = 0, 0
				}
				return nil, nil, []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{}, &pgproto3.Query{String: q}, &pgproto3.Sync{},
					&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}}
			})
			checkDual(t, peer.take(), commits)
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", base, base+9)); n != want {
				t.Errorf("%d rows committed, want %d", n, want)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
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
