package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestFlushedCallShapes: requests with procedures in parts sent before their Sync (after a
// Flush), beside errors, transaction control, writes and DDL, give the same replies and rows
// through the shim — with and without a hold in place when they start — as PostgreSQL's, and
// leave the commit gate once they end.
func TestFlushedCallShapes(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE p(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; INSERT INTO acct VALUES (i + 1000, 1); END $$`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	ctx := capCtx(t, 120*time.Second)
	fl := &pgproto3.Flush{}
	sy := &pgproto3.Sync{}
	count := xq("SELECT count(*), coalesce(sum(id), 0) FROM acct")
	for n, steps := range [][]xstep{
		{xmsgs("C", "CALL p(1)", fl), xmsgs("Z", "CALL p(2)", sy), count},
		{xmsgs("E", "SELECT 1/0", fl), xmsgs("", "CALL p(1)", fl), xmsgs("Z", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("E", "SELECT 1/0", fl), xmsgs("Z", "CALL p(2)", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("E", "SELECT 1/0", "CALL p(2)", fl), xmsgs("Z", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("Z", "INSERT INTO acct VALUES (7, 1)", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("Z", "BEGIN", "INSERT INTO acct VALUES (7, 1)", "COMMIT", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("Z", "BEGIN", "INSERT INTO acct VALUES (7, 1)", "ROLLBACK", "CALL p(2)", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("Z", "ROLLBACK", "CALL p(2)", sy), count},
		{xmsgs("C", "CALL p(1)", "COMMIT", fl), xmsgs("C", "CALL p(2)", fl), xmsgs("Z", sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("C", "BEGIN", "CALL p(2)", fl), xmsgs("Z", "COMMIT", sy), count},
		{xmsgs("C", "BEGIN", fl), xmsgs("E", "CALL p(1)", fl), xmsgs("Z", "ROLLBACK", sy), count},
		{xmsgs("G", "CALL p(1)", "COPY acct FROM STDIN", fl), xmsgs("Z", &pgproto3.CopyData{Data: []byte("8\t1\n")}, &pgproto3.CopyDone{}, sy), count},
		{xmsgs("G", "CALL p(1)", "COPY acct FROM STDIN", fl), xmsgs("Z", &pgproto3.CopyData{Data: []byte("8\t1\n")}, &pgproto3.CopyDone{}, "CALL p(2)", sy), count},
		{xmsgs("G", "CALL p(1)", "COPY acct FROM STDIN", fl), xmsgs("Z", &pgproto3.CopyFail{Message: "no"}, sy), count},
		{xmsgs("G", "CALL p(1)", "COPY acct FROM STDIN", sy), xmsgs("Z", &pgproto3.CopyData{Data: []byte("8\t1\n")}, &pgproto3.CopyDone{}, sy), count},
		{xmsgs("C", "CALL p(1)", fl), xmsgs("G", "COPY acct FROM STDIN", sy), xmsgs("Z", &pgproto3.CopyData{Data: []byte("8\t1\n")}, &pgproto3.CopyDone{}, sy), count},
	} {
		for _, hold := range []bool{false, true} {
			var want string
			for i, r := range []*rawSession{dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)} {
				r.t = t
				if i == 1 && hold {
					release, err := s.HoldCommits(ctx)
					if err != nil {
						t.Fatal(err)
					}
					go func() { time.Sleep(600 * time.Millisecond); release() }()
				}
				got := r.runSteps(steps)
				r.conn.Close()
				if i == 0 {
					want = got
				} else if got != want {
					t.Errorf("shape %d, hold %v:\nshim: %s\nPostgreSQL: %s", n, hold, got, want)
				}
				c.Exec(t, `DELETE FROM acct`)
				c.Exec(t, `DROP TABLE IF EXISTS t1, t2`)
			}
			waitForLong(t, "the gate left", 10*time.Second, func() bool {
				a, sl, o, orph := s.gate.counts()
				return a == 0 && sl == 0 && o == 0 && orph == 0
			})
		}
	}
}
