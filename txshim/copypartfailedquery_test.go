package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartFailedThenQuery: an extended COPY FROM STDIN sent up to a Flush (a part), whose
// COPY fails — a bad row, the client's CopyFail, a table that does not exist — and whose
// client then sends a simple Query before the request's Sync, with no Sync during the COPY.
// PostgreSQL skips the Query, as all else up to the Sync after the error, and answers that Sync.
// The shim took the Query for one inside an open extended request and ended the session (08P01,
// not supported); it now asks the backend whether the part failed (copyPartProbeImplicit's
// probe, harmless either way) and skips the Query when it did. "call": a procedure before the
// COPY, which then runs in the request's implicit transaction (copyPartImplicit); "block": in
// the client's block; else in the shim's.
func TestCopyPartFailedThenQuery(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cpq(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	for _, tc := range []string{"call/bad", "call/fail", "call/missing", "wrap/bad", "wrap/fail", "wrap/missing", "block/bad", "block/fail", "wrap/bad/flush"} {
		t.Run(tc, func(t *testing.T) {
			passedCopyStepsOn(t, c, peer, s, 0, func(b int) [][]pgproto3.FrontendMessage {
				copySQL := "COPY acct FROM STDIN"
				if strings.Contains(tc, "missing") {
					copySQL = "COPY no_such_table FROM STDIN"
				}
				var part []pgproto3.FrontendMessage
				if strings.HasPrefix(tc, "call") {
					part = append(part, &pgproto3.Parse{Query: fmt.Sprintf("CALL cpq(%d)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{})
				}
				part = append(part, &pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
				var data []pgproto3.FrontendMessage
				switch {
				case strings.Contains(tc, "bad"):
					data = []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{}}
				case strings.Contains(tc, "fail"):
					data = []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyFail{Message: "client gave up"}}
				}
				if strings.HasSuffix(tc, "/flush") {
					data = append(data, &pgproto3.Flush{})
				}
				steps := [][]pgproto3.FrontendMessage{part}
				if data != nil {
					steps = append(steps, data)
				}
				steps = append(steps,
					[]pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5)}},
					[]pgproto3.FrontendMessage{&pgproto3.Sync{}})
				if strings.HasPrefix(tc, "block") {
					steps = append([][]pgproto3.FrontendMessage{{&pgproto3.Query{String: "BEGIN"}}}, append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: "COMMIT"}})...)
				}
				return append(steps, []pgproto3.FrontendMessage{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}})
			})
		})
	}
}

// TestCopyPartDoneThenQueryEnds: as TestCopyPartFailedThenQuery, the part's COPY ended well.
// PostgreSQL runs the Query in the request's transaction, behind the part, committing both at
// the Query's end when that transaction is the implicit one. Where the part runs in a block,
// the shim's or the client's, the shim walks the Query in it as PostgreSQL runs it
// (TestCopyPartDoneThenQuery); in the request's implicit transaction (a procedure before the
// COPY) it does not support it (the Query's statements cannot join the implicit transaction
// walk follows, nor its dual commit): the session ends with 08P01, and nothing the request ran
// is committed.
func TestCopyPartDoneThenQueryEnds(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cpd(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	for i, tc := range []string{"call"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 100*i
			r := dialRaw(t, s)
			if tc == "block" {
				if got := r.query("BEGIN"); got != "CZ" {
					t.Fatalf("BEGIN: %q", got)
				}
			}
			if tc == "call" {
				r.stmt(fmt.Sprintf("CALL cpd(%d)", b))
			}
			r.stmt("COPY acct FROM STDIN")
			r.flush('G')
			sendMsgs(t, r, copyRow(b+1), &pgproto3.CopyDone{}, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{})
			if got := r.toEnd(); !strings.Contains(got, "E(08P01)") || !strings.Contains(got, "EOF") {
				t.Errorf("replies %q: want 08P01 and the end of the session", got)
			}
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != 0 {
				t.Errorf("%d rows committed, want none", n)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
			checkDual(t, peer.take(), 0)
		})
	}
}
