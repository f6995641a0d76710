package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRefusalAfterImplicitCopy: a simple Query whose procedure runs first, so that the shim
// wraps none of it (wrapFrom), then a COPY FROM STDIN and a statement the shim refuses
// (a write to Tandem's own tables, 42501). PostgreSQL runs the Query's statements in one
// implicit transaction and rolls all of it back at an error of its last one. walk's raise sent
// the steps before the refusal as a Query of their own whenever they held a COPY, which
// committed the procedure's and the COPY's rows, and only then raised the error in a
// transaction of its own: the client was told its request failed, and its rows were
// committed. Compared with PostgreSQL raising the same SQLSTATE at that statement. "insert":
// an INSERT between the COPY and the refusal; "bad": a bad row, the COPY failing first;
// "fail": the client's CopyFail.
func TestRefusalAfterImplicitCopy(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cpr(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	base := 0
	for _, tc := range []string{"call", "call/insert", "call/bad", "call/fail", "nocall"} {
		t.Run(tc, func(t *testing.T) {
			var got [2]string
			for k, via := range []string{"PostgreSQL", "shim"} {
				base += 100
				b := base
				refused := "DELETE FROM tandem.ddl"
				if via == "PostgreSQL" {
					refused = `DO $$BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '42501'; END$$`
				}
				stmts := []string{"COPY acct FROM STDIN"}
				if strings.HasPrefix(tc, "call") {
					stmts = append([]string{fmt.Sprintf("CALL cpr(%d)", b)}, stmts...)
				}
				if strings.HasSuffix(tc, "/insert") {
					stmts = append(stmts, fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5))
				}
				data := []pgproto3.FrontendMessage{copyRow(b + 1)}
				switch {
				case strings.HasSuffix(tc, "/bad"):
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{})
				case strings.HasSuffix(tc, "/fail"):
					data = append(data, &pgproto3.CopyFail{Message: "client gave up"})
				default:
					data = append(data, &pgproto3.CopyDone{})
				}
				r := dialVia(t, via, c, s)
				var out strings.Builder
				for _, st := range [][]pgproto3.FrontendMessage{
					{&pgproto3.Query{String: strings.Join(append(stmts, refused), "; ")}},
					data,
					{&pgproto3.Query{String: "SELECT 1"}},
				} {
					sendMsgs(t, r, st...)
					out.WriteString(r.quiet())
				}
				out.WriteString(r.stepsEnd())
				got[k] = out.String()
				if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 0 {
					t.Errorf("%s: %d rows committed, want none: the request failed", via, n)
				}
			}
			if got[0] != got[1] {
				t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
			}
			checkDual(t, peer.take(), 0)
		})
	}
}
