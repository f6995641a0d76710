package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtCopyEndErrorSentAtOnce: an extended-protocol COPY FROM STDIN the shim wraps whose last
// row, without its newline, is bad: the backend fails it at the client's CopyDone, before the
// Sync, and PostgreSQL sends that error at once (it flushes every error). The shim's COPY stays
// open for copyInOpen until the request's reply, past the client's CopyDone, so the error goes
// out then too, not held for the client's Sync, which a client waiting for the COPY's outcome
// would never send.
func TestExtCopyEndErrorSentAtOnce(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for _, via := range []string{"PostgreSQL", "shim"} {
		r := dialVia(t, via, c, s)
		startExtCopy(t, via, r)
		sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad")}, &pgproto3.CopyDone{})
		r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, err := r.fe.Receive()
		if e, ok := m.(*pgproto3.ErrorResponse); !ok || err != nil || e.Code != "22P02" {
			t.Fatalf("%s: after a bad last row and CopyDone, before Sync: %T %v; want the ErrorResponse 22P02", via, m, err)
		}
		r.conn.SetReadDeadline(time.Time{})
		sendMsgs(t, r, &pgproto3.Sync{})
		if got, st := r.ready(); got != "Z" || st != 'I' {
			t.Errorf("%s: the failed COPY's end: %q status %c, want Z status I", via, got, st)
		}
		if got := r.query("SELECT 42"); got != "TDCZ" {
			t.Errorf("%s: the next query's replies: %q, want TDCZ", via, got)
		}
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for a COPY that failed", calls)
	}
}
