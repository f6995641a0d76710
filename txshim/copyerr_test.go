package txshim

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// sendMsgs writes msgs to the raw session and flushes them.
func sendMsgs(t *testing.T, r *rawSession, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		switch m.(type) {
		case *pgproto3.Query, *pgproto3.Sync, *pgproto3.FunctionCall:
			r.asked++
		}
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
}

// badCopy starts a dual shim, a client of it, and a COPY FROM STDIN outside a transaction (the
// shim wraps it) whose first row is bad.
func badCopy(t *testing.T) (*fakePeer, *rawSession) {
	t.Helper()
	_, peer, s := dualShim(t)
	r := dialRaw(t, s)
	sendMsgs(t, r, &pgproto3.Query{String: "COPY acct FROM STDIN"})
	if got, err := r.until('G'); err != nil {
		t.Fatalf("COPY: %q %v", got, err)
	}
	sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")})
	return peer, r
}

// TestCopyErrorSentAtOnce: a COPY FROM STDIN the shim wraps in its own transaction that fails
// on a bad row: PostgreSQL sends the error at once, so a client streaming data can stop; the
// shim held it until the client's CopyDone.
func TestCopyErrorSentAtOnce(t *testing.T) {
	t.Parallel()
	peer, r := badCopy(t)
	r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	m, err := r.fe.Receive()
	if _, ok := m.(*pgproto3.ErrorResponse); !ok || err != nil {
		t.Fatalf("after a bad row, before CopyDone: %T %v; want the ErrorResponse", m, err)
	}
	r.conn.SetReadDeadline(time.Time{})
	sendMsgs(t, r, &pgproto3.CopyDone{})
	if got := r.query("SELECT 1"); !strings.HasSuffix(got, "Z") {
		t.Errorf("the session after the failed COPY: %q", got)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for a COPY that failed", calls)
	}
}

// TestSyncDuringFailedCopy: a client that sends Sync during a simple Query's COPY FROM STDIN
// (PostgreSQL ignores it in copy-in) after a bad row ended the COPY: the backend answered the
// Sync with a ReadyForQuery, which the shim took for the reply to its own ROLLBACK, whose
// replies then reached the client, every later reply one ReadyForQuery out of step. The client
// gets the Query's ReadyForQuery and the Sync's, as from PostgreSQL, and nothing of the shim's.
func TestSyncDuringFailedCopy(t *testing.T) {
	t.Parallel()
	peer, r := badCopy(t)
	time.Sleep(300 * time.Millisecond) // the backend fails the COPY and leaves copy-in
	sendMsgs(t, r, &pgproto3.Sync{}, &pgproto3.CopyData{Data: []byte("7\t0\n")}, &pgproto3.CopyDone{})
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"E(22P02)Z", "Z"} {
		if got, err := r.until('Z'); err != nil || got != want {
			t.Fatalf("the failed COPY's replies: %q %v; want %q, none of the shim's own", got, err, want)
		}
	}
	r.conn.SetReadDeadline(time.Time{})
	if got := r.query("SELECT 42"); got != "TDCZ" {
		t.Errorf("the next query's replies: %q, want TDCZ", got)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for a COPY that failed", calls)
	}
}
