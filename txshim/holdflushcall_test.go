package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestHoldFlushedCall: a procedure commits by itself, outside the commit procedure, and passes
// the commit gate so that a hold (catch-up's tail) stops it — in a request's last part. One in
// a part sent before the Sync, with a Flush, must not commit while the hold is in place either;
// it runs once the hold is released, and the request ends as usual.
func TestHoldFlushedCall(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE hf(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 30*time.Second)
	for _, flush := range []bool{false, true} {
		id := map[bool]int{false: 41, true: 42}[flush]
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		release, err := s.HoldCommits(hctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		r := dialRaw(t, s)
		r.stmt("CALL hf(" + map[bool]string{false: "41", true: "42"}[flush] + ")")
		if flush {
			r.fe.Send(&pgproto3.Flush{})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
		} else {
			r.pipeline()
		}
		time.Sleep(time.Second)
		n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = $1`, id)
		release()
		t.Logf("flush %v: %d rows committed while the hold was in place", flush, n)
		if n != 0 {
			t.Errorf("a procedure (flush %v) committed while commits were held", flush)
		}
		if flush {
			r.pipeline()
		}
		r.conn.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := r.until('Z')
		if err != nil || got[len(got)-2:] != "CZ" {
			t.Errorf("flush %v: reply %q %v, want CALL's CommandComplete, then ReadyForQuery", flush, got, err)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = $1`, id); n != 1 {
			t.Errorf("flush %v: %d rows after the reply, want 1", flush, n)
		}
		r.conn.Close()
	}
}
