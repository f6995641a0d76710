package txshim

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartAfterCallThenQuery: an extended request whose part sent up to a Flush holds a
// CALL and then a COPY FROM STDIN, which so runs in the request's implicit transaction
// (copyPartImplicit), the client sending a simple Query or a FunctionCall after the COPY's
// CopyDone, before the Sync. PostgreSQL runs it in that transaction and commits it at its end:
// what the procedure wrote since its last COMMIT, the COPY's rows and the Query's (or rolls
// them back at its error). The shim ended the session (08P01, not supported), the COPY and the
// procedure's last writes rolled back. Now a BEGIN of the shim's takes the implicit
// transaction into its block (joinImplicit), and the Query or call is walked there as after a
// COPY it wrapped: one dual commit at its end, the reply waiting for what the procedure
// committed itself ("commits": a COMMIT in it).
func TestCopyPartAfterCallThenQuery(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	var shipped atomic.Int32
	peer := shipCounter{&fakePeer{c: c, t: t}, &shipped}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	c.Exec(t, `CREATE PROCEDURE cpa(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	c.Exec(t, `CREATE PROCEDURE cpac(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); COMMIT; INSERT INTO acct VALUES (i + 3, 0); END $$`)
	c.Exec(t, `CREATE FUNCTION cpaf(i int) RETURNS int LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) RETURNING i $$`)
	var oid uint32
	if err := c.Open(t, c.Database()).QueryRow("SELECT 'cpaf(int)'::regprocedure::oid").Scan(&oid); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []string{"query", "query/error", "fcall", "fcall/error", "commits/query", "commits/query/error", "commits/fcall"} {
		t.Run(tc, func(t *testing.T) {
			commits, want := 1, 3
			shipped.Store(0)
			base := extCopySteps(t, c, s, 7000+1000*i, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
				proc := "cpa"
				if strings.HasPrefix(tc, "commits") {
					proc, want = "cpac", 4
				}
				arg := b + 5
				if strings.HasSuffix(tc, "/error") {
					arg, commits, want = b+1, 0, 0 // the COPY's row again
					if proc == "cpac" {
						want = 1 // the procedure's first row, which it committed
					}
				}
				cp := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: fmt.Sprintf("CALL %s(%d)", proc, b)}, &pgproto3.Bind{}, &pgproto3.Execute{},
					&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}
				next := pgproto3.FrontendMessage(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", arg)})
				if strings.HasPrefix(tc, "fcall") {
					next = &pgproto3.FunctionCall{Function: oid, Arguments: [][]byte{[]byte(fmt.Sprint(arg))}}
				}
				after := []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{}, next, &pgproto3.Sync{},
					&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}}
				return nil, cp, after
			})
			checkDual(t, peer.take(), commits)
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", base, base+9)); n != want {
				t.Errorf("%d rows committed, want %d", n, want)
			}
			if n := shipped.Load(); strings.HasPrefix(tc, "commits") && n == 0 {
				t.Errorf("the reply did not wait until the peer had what the procedure committed")
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}
