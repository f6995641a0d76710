package txshim

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRefusalAfterImplicitCopyErrorPosition: a simple Query that raise sends, up to a refused
// statement, as a Query of its own after its first statements went in a part (a ROLLBACK,
// lastTxControl), its procedure keeping the shim's BEGIN out (wrapFrom): an error with a
// position in a statement before the refusal must have it within the client's text, as
// PostgreSQL gives it, not within the part. "copy": a COPY FROM STDIN among those statements,
// which before TestRefusalAfterImplicitCopy's change went as a part of their own (with its
// shift); "ü": text before the part of more bytes than characters.
func TestRefusalAfterImplicitCopyErrorPosition(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cpp(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	base := 8000
	for _, tc := range []string{"copy", "nocopy", "copy/ü"} {
		t.Run(tc, func(t *testing.T) {
			var got [2]string
			for k, via := range []string{"PostgreSQL", "shim"} {
				base += 100
				b := base
				refused := "DELETE FROM tandem.ddl"
				if via == "PostgreSQL" {
					refused = `DO $$BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '42501'; END$$`
				}
				stmts := []string{"ROLLBACK", fmt.Sprintf("CALL cpp(%d)", b)}
				if strings.Contains(tc, "ü") {
					stmts = append([]string{"SELECT 'ünïcödé'"}, stmts...)
				}
				if strings.HasPrefix(tc, "copy") {
					stmts = append(stmts, "COPY acct FROM STDIN")
				}
				stmts = append(stmts, "SELECT nosuch FROM acct", refused)
				r := dialVia(t, via, c, s)
				sendMsgs(t, r, &pgproto3.Query{String: strings.Join(stmts, "; ")})
				var out strings.Builder
				for {
					r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
					m, err := r.fe.Receive()
					if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("%s: no ReadyForQuery after %q", via, out.String())
					}
					if err != nil {
						t.Fatalf("%s: after %q: %v", via, out.String(), err)
					}
					out.WriteString(quietName(m))
					switch m := m.(type) {
					case *pgproto3.ErrorResponse:
						fmt.Fprintf(&out, "@%d", m.Position)
					case *pgproto3.CopyInResponse:
						sendMsgs(t, r, copyRow(b+1), &pgproto3.CopyDone{})
					}
					if _, ok := m.(*pgproto3.ReadyForQuery); ok {
						break
					}
				}
				r.conn.SetReadDeadline(time.Time{})
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
