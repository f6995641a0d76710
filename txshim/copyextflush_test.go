package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtCopyDoneFlush: an extended-protocol COPY FROM STDIN the shim wraps, ended with
// CopyDone and a Flush (the Sync after the Execute having been ignored in copy-in): PostgreSQL
// sends the COPY's CommandComplete at the Flush; the shim passed the Flush on but held the
// reply in the client's buffer until the client's Sync, so a client waiting for it to send its
// Sync waited for good.
func TestExtCopyDoneFlush(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for i, via := range []string{"PostgreSQL", "shim"} {
		r := dialVia(t, via, c, s)
		startExtCopy(t, via, r)
		sendMsgs(t, r, &pgproto3.CopyData{Data: fmt.Appendf(nil, "%d\t5\n", 80+i)}, &pgproto3.CopyDone{}, &pgproto3.Flush{})
		r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		m, err := r.fe.Receive()
		if cc, ok := m.(*pgproto3.CommandComplete); !ok || err != nil || string(cc.CommandTag) != "COPY 1" {
			t.Fatalf("%s: after CopyDone and Flush: %T %v; want CommandComplete COPY 1", via, m, err)
		}
		r.conn.SetReadDeadline(time.Time{})
		sendMsgs(t, r, &pgproto3.Sync{})
		if got, err := r.until('Z'); err != nil || got != "Z" {
			t.Fatalf("%s: the COPY's end: %q %v", via, got, err)
		}
	}
	checkDual(t, peer.take(), 1)
	if n := rowCount(t, c, "id IN (80, 81)"); n != 2 {
		t.Errorf("%d rows copied, want 2", n)
	}
}
