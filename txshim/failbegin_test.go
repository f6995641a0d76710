package txshim

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFailedWriteBeforeBegin: a write that fails before a BEGIN in the same request ends the
// request, PostgreSQL skipping the rest; the session is idle after it, as PostgreSQL leaves it
// (the failed write's implicit transaction rolled back), not in a failed block the client never
// began.
func TestFailedWriteBeforeBegin(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	r.fe.Send(&pgproto3.Query{String: "INSERT INTO acct VALUES (1/0, 0); BEGIN; INSERT INTO acct VALUES (2, 0); ROLLBACK"})
	r.fe.Flush()
	if got, st := r.ready(); got != "E(22012)Z" || st != 'I' {
		t.Errorf("simple Query: %q %c, want E(22012)Z I as PostgreSQL", got, st)
	}
	for _, q := range []string{"INSERT INTO acct VALUES (1/0, 0)", "BEGIN", "INSERT INTO acct VALUES (2, 0)", "ROLLBACK"} {
		r.stmt(q)
	}
	if got, st := r.sync(); st != 'I' {
		t.Errorf("extended request: %q %c, want status I as PostgreSQL", got, st)
	}
	if got := r.query("SELECT 1"); got != "TDCZ" {
		t.Errorf("the next request: %q, want TDCZ", got)
	}
	// Without a failure the write before the BEGIN is in the transaction the BEGIN makes
	// explicit: one dual commit of both rows.
	if got := r.query("INSERT INTO acct VALUES (3, 0); BEGIN; INSERT INTO acct VALUES (4, 0); COMMIT"); got != "CCCCZ" {
		t.Errorf("a write, then BEGIN … COMMIT: %q, want CCCCZ", got)
	}
	checkDual(t, peer.take(), 1)
	if n := rowCount(t, c, "true"); n != 2 {
		t.Errorf("%d rows, want 2", n)
	}
}
