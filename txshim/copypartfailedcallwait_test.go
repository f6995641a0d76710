package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartFailedAfterCallWaitsForPeer: a CALL of a procedure that commits, and then a COPY
// FROM STDIN sent as a part (up to a Flush), the COPY in the request's implicit transaction,
// which fails (a bad row, a CopyFail); the client then sends a simple Query or a FunctionCall
// before its Sync, which PostgreSQL skips up to the Sync. What the procedure committed stays
// committed, on this database alone until the peer has it. The shim ended the part
// (endCopyPart) and forgot the procedure (unitState.procLeft): the Sync's ReadyForQuery
// reached the client without a wait for the peer, where every other end of such a request
// waits (runBatch, walk), and a failover right after could lose what the procedure committed.
// The peer here holds WaitShipped until released: the reply must not come before that.
func TestCopyPartFailedAfterCallWaitsForPeer(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &gatedShipPeer{fakePeer: &fakePeer{c: c, t: t}}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	c.Exec(t, `CREATE PROCEDURE cfw(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); COMMIT; INSERT INTO acct VALUES (i + 3, 0); END $$`)
	for i, tc := range []string{"badrow/query", "badrow/fcall", "copyfail/query"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 100*i
			r := callCopyPart(t, s, "cfw", b)
			g := peer.arm()
			defer peer.gate.Store(nil)
			end := pgproto3.FrontendMessage(&pgproto3.CopyDone{})
			row := pgproto3.FrontendMessage(&pgproto3.CopyData{Data: []byte("x\n")})
			if strings.HasPrefix(tc, "copyfail") {
				end, row = &pgproto3.CopyFail{Message: "no"}, copyRow(b+1)
			}
			next := pgproto3.FrontendMessage(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5)})
			if strings.HasSuffix(tc, "fcall") {
				next = &pgproto3.FunctionCall{Function: 1, Arguments: [][]byte{[]byte("1")}}
			}
			sendMsgs(t, r, row, end, next, &pgproto3.Sync{})
			seen, err := replyAfterPeer(t, r, g)
			if err != nil || !strings.Contains(seen, "E(") || !strings.HasSuffix(seen, "Z") {
				t.Fatalf("reply: %q %v, want the COPY's error and the Sync's ReadyForQuery", seen, err)
			}
			if got := r.query("SELECT 1"); got != "TDCZ" {
				t.Errorf("the next query's replies %q, want TDCZ", got)
			}
			checkDual(t, peer.take(), 0)
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 1 {
				t.Errorf("%d rows committed, want 1 (the procedure's first)", n)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}
