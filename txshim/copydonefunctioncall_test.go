package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyDoneThenFunctionCall: an extended COPY FROM STDIN whose CopyDone is followed, before
// the request's Sync, by a fast-path function call (FunctionCall) of a function that writes:
// the COPY wrapped by the shim (its Execute and Sync sent before the data), or sent as a part
// (up to a Flush), in the shim's block or the client's. PostgreSQL runs the call in the
// request's transaction, behind the COPY, and ends it as it ends a simple Query: in the
// implicit transaction it commits the COPY's rows and the function's at the call's end (or
// rolls both back at its error) and sends a ReadyForQuery, then answers the Sync with one of
// its own. The shim ended the session (08P01, not supported) where the COPY ran in its block.
// Now the call runs in that block, which is committed at its end: one dual commit for the
// COPY's rows and the function's.
func TestCopyDoneThenFunctionCall(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE FUNCTION fcw(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING i $$`)
	var oid uint32
	if err := c.Open(t, c.Database()).QueryRow("SELECT 'fcw(int)'::regprocedure::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []string{"wrap", "part", "wrap/error", "part/error", "part/block"} {
		t.Run(tc, func(t *testing.T) {
			commits, want := 1, 2
			base := extCopySteps(t, c, s, 7000+1000*i, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
				var before [][]pgproto3.FrontendMessage
				arg := b + 2
				if strings.HasSuffix(tc, "/error") {
					arg, commits, want = b+1, 0, 0 // the COPY's row again
				}
				var cp []pgproto3.FrontendMessage // the shim wraps it: Parse, Bind, Execute, Sync
				if strings.HasPrefix(tc, "part") {
					cp = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}
				}
				after := []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{},
					&pgproto3.FunctionCall{Function: oid, Arguments: [][]byte{[]byte(fmt.Sprint(arg))}}, &pgproto3.Sync{}}
				if strings.HasSuffix(tc, "/block") {
					before = [][]pgproto3.FrontendMessage{{&pgproto3.Query{String: "BEGIN"}}}
					after = append(after, &pgproto3.Query{String: "COMMIT"})
				}
				after = append(after, &pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)})
				return before, cp, after
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
