package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyDoneThenCall: a CALL sent after an extended COPY FROM STDIN's CopyDone, before the
// request's Sync (a Parse/Bind/Execute, or a simple Query), the COPY wrapped by the shim or
// sent as a part (up to a Flush). PostgreSQL runs it in the COPY's implicit transaction. The
// shim runs the COPY in a block of its own, begun before it could see the CALL coming, and the
// CALL in that block with it: a procedure that does not end the transaction is committed with
// the COPY's rows, one dual commit, as PostgreSQL commits them ("plain"). One that commits
// ("commits") fails there as in any transaction block (2D000, invalid transaction
// termination), where PostgreSQL commits the COPY's rows with its first COMMIT, plainly. That
// difference stays: the shim cannot turn its block into the implicit transaction, and
// committing the COPY's rows before the CALL would keep them where PostgreSQL rolls them back
// (the procedure failing or rolling back before its COMMIT). The whole request is rolled back:
// nothing on either database, nothing left prepared, and the session goes on.
func TestCopyDoneThenCall(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cdp(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	c.Exec(t, `CREATE PROCEDURE cdc(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 0); COMMIT; END $$`)
	steps := func(tc string, b int) (cp, after []pgproto3.FrontendMessage) {
		if strings.HasPrefix(tc, "part") {
			cp = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}}
		}
		proc := "cdp"
		if strings.HasSuffix(tc, "commits") {
			proc = "cdc"
		}
		call := fmt.Sprintf("CALL %s(%d)", proc, b+2)
		after = []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{}}
		if strings.Contains(tc, "/query/") {
			after = append(after, &pgproto3.Query{String: call})
		} else {
			after = append(after, &pgproto3.Parse{Query: call}, &pgproto3.Bind{}, &pgproto3.Execute{})
		}
		return cp, append(after, &pgproto3.Sync{}, &pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)})
	}
	for i, tc := range []string{"wrap/ext/plain", "part/ext/plain", "wrap/query/plain", "part/query/plain", "wrap/ext/commits", "part/ext/commits", "wrap/query/commits", "part/query/commits"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 1000*i
			if strings.HasSuffix(tc, "plain") {
				base := extCopySteps(t, c, s, b, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
					cp, after := steps(tc, b)
					return nil, cp, after
				})
				checkDual(t, peer.take(), 1)
				if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", base, base+9)); n != 2 {
					t.Errorf("%d rows committed, want 2", n)
				}
				return
			}
			r := dialVia(t, "shim", c, s)
			r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			cp, after := steps(tc, b)
			if cp == nil {
				cp = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			}
			sendMsgs(t, r, cp...)
			if seen, err := r.until('G'); err != nil {
				t.Fatalf("COPY: %q %v", seen, err)
			}
			sendMsgs(t, r, after...)
			if got := r.stepsEnd(); !strings.Contains(got, "E(2D000)") || !strings.HasSuffix(got, "IZ(I)") {
				t.Errorf("replies %s: want the CALL failed (2D000) and the session going on", got)
			}
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 0 {
				t.Errorf("%d rows committed, want none", n)
			}
			checkDual(t, peer.take(), 0)
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}
