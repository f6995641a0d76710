package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtCopyMidSyncAfterError: an extended-protocol COPY FROM STDIN the shim wraps, whose
// client sends a bad row and a Sync before its CopyDone and Sync. The backend, out of copy-in
// once the row failed, answered the Sync in the middle with a ReadyForQuery of the request,
// and the one at the end with another nobody waited for: taken for the reply to the shim's
// ROLLBACK, whose own replies then reached the client (or passed on as a ReadyForQuery of a
// failed transaction), and the client's next request got them. The client gets a
// ReadyForQuery for each of the two Syncs, status idle, as from PostgreSQL
// (TestWrappedExtCopyMidSyncReplies), and nothing else.
func TestExtCopyMidSyncAfterError(t *testing.T) {
	t.Parallel()
	_, peer, s := dualShim(t)
	for i := 0; i < 4; i++ {
		r := dialRaw(t, s)
		startExtCopy(t, "shim", r)
		sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{})
		r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, err := r.fe.Receive()
		if e, ok := m.(*pgproto3.ErrorResponse); !ok || err != nil || e.Code != "22P02" {
			t.Fatalf("after a bad row and a Sync: %T %v; want the ErrorResponse 22P02", m, err)
		}
		sendMsgs(t, r, &pgproto3.CopyDone{}, &pgproto3.Sync{})
		for j := 0; j < 2; j++ {
			got, st := r.ready()
			if got != "Z" || st != 'I' {
				t.Errorf("the failed COPY's end, Sync %d: %q status %c, want Z status I", j+1, got, st)
			}
		}
		r.conn.SetReadDeadline(time.Time{})
		if got := r.query("SELECT 42"); got != "TDCZ" {
			t.Fatalf("the next query's replies: %q, want TDCZ", got)
		}
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for COPYs that failed", calls)
	}
}
