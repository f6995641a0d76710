package txshim

import (
	"context"
	"testing"
	"time"
)

// TestHoldCallBeforeDDLAfterFlush: a request's last part with a procedure, then DDL, after a
// part sent before its Sync (status not known): the procedure must not commit under a hold.
func TestHoldCallBeforeDDLAfterFlush(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE hd(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 30*time.Second)
	r := dialRaw(t, s)
	defer r.conn.Close()
	r.conn.SetDeadline(time.Now().Add(20 * time.Second))
	r.stmt("SELECT 1")
	r.sendFlush()
	if got, err := r.until('C'); err != nil {
		t.Fatalf("%q %v", got, err)
	}
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	release, err := s.HoldCommits(hctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	r.pipeline("CALL hd(81)", "CREATE TABLE t81 (i int)")
	time.Sleep(time.Second)
	n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 81`)
	release()
	got, err := r.until('Z')
	t.Logf("%d rows committed while the hold was in place; reply %s %v", n, got, err)
	if n != 0 {
		t.Error("a procedure committed while commits were held")
	}
}
