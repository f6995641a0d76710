package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyClientGone: a client that disconnects in the middle of a COPY FROM STDIN, wrapped by
// the shim or passed through in its own block, at each point of it: the session ends, its
// backend with it, nothing is prepared or kept, and the peer is never called.
func TestCopyClientGone(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	db := c.Open(t, c.Database())
	base := 8000
	for _, tc := range []struct {
		name string
		run  func(r *rawSession, id int)
	}{
		{"simple/data", func(r *rawSession, id int) {
			sendMsgs(t, r, &pgproto3.Query{String: "COPY acct FROM STDIN"})
			r.until('G')
			sendMsgs(t, r, copyRow(id))
		}},
		{"ext/data", func(r *rawSession, id int) {
			startExtCopy(t, "shim", r)
			sendMsgs(t, r, copyRow(id), &pgproto3.Sync{})
		}},
		{"ext/done", func(r *rawSession, id int) {
			startExtCopy(t, "shim", r)
			sendMsgs(t, r, copyRow(id), &pgproto3.CopyDone{})
		}},
		{"ext/failed", func(r *rawSession, id int) {
			startExtCopy(t, "shim", r)
			sendMsgs(t, r, copyRow(id), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{})
			r.until('Z')
		}},
		{"block/data", func(r *rawSession, id int) {
			r.query("BEGIN")
			sendMsgs(t, r, &pgproto3.Query{String: "COPY acct FROM STDIN"})
			r.until('G')
			sendMsgs(t, r, copyRow(id), &pgproto3.Sync{})
		}},
	} {
		base += 10
		r := dialRaw(t, s)
		r.conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc.run(r, base)
		time.Sleep(100 * time.Millisecond)
		r.conn.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var backends, prepared, rows int
			if err := db.QueryRow(`SELECT (SELECT count(*) FROM pg_stat_activity WHERE query ILIKE '%COPY acct%' AND pid <> pg_backend_pid()),
				(SELECT count(*) FROM pg_prepared_xacts), (SELECT count(*) FROM acct WHERE id = $1)`, base).Scan(&backends, &prepared, &rows); err != nil {
				t.Fatal(err)
			}
			active := s.Stats().SessionsActive
			if backends == 0 && prepared == 0 && rows == 0 && active == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: after the client's end: %d backends of the COPY, %d prepared, %d rows, %d sessions", tc.name, backends, prepared, rows, active)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Errorf("peer calls %v for COPYs whose client left", calls)
	}
}
