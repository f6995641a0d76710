package txshim

import (
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFlushedCallSyncWaits: whatever follows a procedure sent before its request's Sync, the
// Sync's ReadyForQuery waits for the peer (a WaitShipped after the procedure's part).
func TestFlushedCallSyncWaits(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE p(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; INSERT INTO acct VALUES (i + 1000, 1); END $$`)
	var shipped atomic.Int32
	s := startShim(t, c, Options{Peer: shipCounter{&fakePeer{c: c, t: t}, &shipped}}, ModeDual, 1)
	fl := &pgproto3.Flush{}
	sy := &pgproto3.Sync{}
	data := []any{&pgproto3.CopyData{Data: []byte("8\t1\n")}, &pgproto3.CopyDone{}, sy}
	for n, rest := range [][]xstep{
		{xmsgs("Z", "SELECT 1", sy)},
		{xmsgs("Z", sy)},
		{xmsgs("E", "SELECT 1/0", fl), xmsgs("Z", sy)},
		{xmsgs("Z", "BEGIN", "INSERT INTO acct VALUES (7, 1)", "COMMIT", sy)},
		{xmsgs("Z", "INSERT INTO acct VALUES (7, 1)", sy)},
		{xmsgs("Z", "ROLLBACK", sy)},
		{xmsgs("C", "BEGIN", fl), xmsgs("Z", "COMMIT", sy)},
		{xmsgs("G", "COPY acct FROM STDIN", fl), xmsgs("Z", data...)},
		{xmsgs("G", "COPY acct FROM STDIN", sy), xmsgs("Z", data...)},
		{xmsgs("Z", "CREATE TABLE tw (i int)", sy)},
		{xmsgs("C", "SELECT 1", fl), xmsgs("Z", "SELECT 2", sy)},
	} {
		r := dialRaw(t, s)
		r.t = t
		first := r.runSteps([]xstep{xmsgs("C", "CALL p(1)", fl)})
		before := shipped.Load()
		got := r.runSteps(rest)
		after := shipped.Load()
		r.conn.Close()
		t.Logf("shape %d: %s\n%s (%d waits for the peer)", n, first, got, after-before)
		if after == before {
			t.Errorf("shape %d: the Sync was answered without waiting for the peer: %s", n, got)
		}
		c.Exec(t, `DELETE FROM acct`)
		c.Exec(t, `DROP TABLE IF EXISTS tw`)
	}
}
