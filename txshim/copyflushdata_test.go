package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyDataFlushedAtClientFlush: a client of a COPY FROM STDIN the shim wraps sends a row
// and then a Flush or Sync (which PostgreSQL ignores in copy-in) in one write, and waits. The
// shim dropped the Flush or Sync without sending on the row it had buffered for the backend:
// the row reached PostgreSQL only with the client's next message, so a bad row's error, which
// PostgreSQL sends at once, never came while the client waited. PostgreSQL, the COPY failed,
// answers the Sync with a ReadyForQuery of its own, after the Query's: so must the shim.
func TestCopyDataFlushedAtClientFlush(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for name, m := range map[string]pgproto3.FrontendMessage{"flush": &pgproto3.Flush{}, "sync": &pgproto3.Sync{}} {
		for _, via := range []string{"PostgreSQL", "shim"} {
			t.Run(name+"/"+via, func(t *testing.T) {
				r := dialVia(t, via, c, s)
				sendMsgs(t, r, &pgproto3.Query{String: "COPY acct FROM STDIN"})
				if got, err := r.until('G'); err != nil {
					t.Fatalf("COPY: %q %v", got, err)
				}
				sendMsgs(t, r, &pgproto3.CopyData{Data: []byte("bad\n")}, m)
				r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
				got, err := r.fe.Receive()
				if e, ok := got.(*pgproto3.ErrorResponse); !ok || err != nil || e.Code != "22P02" {
					t.Fatalf("after a bad row and a %T, before CopyDone: %T %v; want the ErrorResponse 22P02", m, got, err)
				}
				sendMsgs(t, r, &pgproto3.CopyDone{})
				want := 1
				if name == "sync" {
					want++
				}
				for i := 0; i < want; i++ {
					if got, err := r.until('Z'); err != nil || got != "Z" {
						t.Fatalf("the failed COPY's end, ReadyForQuery %d: %q %v", i+1, got, err)
					}
				}
				r.conn.SetReadDeadline(time.Time{})
				if got := r.query("SELECT 42"); got != "TDCZ" {
					t.Errorf("the next query's replies: %q, want TDCZ", got)
				}
				if calls := peer.take(); len(calls) != 0 {
					t.Errorf("peer calls %v for a COPY that failed", calls)
				}
			})
		}
	}
}
