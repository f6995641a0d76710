package txshim

import (
	"context"
	"database/sql"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestDrainOrphanProcedure: a session the shim ends while its CALL runs (its client went away,
// and the shim's write of the procedure's notice to it failed) leaves the commit gate at once,
// its backend still running the procedure: PostgreSQL does not see the closed connection
// until it writes again. A handover's Drain then found nothing in flight, and the procedure
// committed on the local database after it returned.
func TestDrainOrphanProcedure(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE orphan() LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.5); RAISE NOTICE '%', repeat('x', 100000); PERFORM pg_sleep(4); INSERT INTO acct VALUES (7, 7); COMMIT; END $$`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 60*time.Second)
	pc, err := pgconn.Connect(ctx, s.dsn(pgtest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	committed, err := orphanedCallDrained(t, ctx, s, db, pc, 7)
	if committed {
		t.Errorf("the procedure of a session the shim ended committed on the local database after Drain returned (Drain: %v)", err)
	}
}

// orphanedCallDrained sends CALL orphan() — a procedure that writes row id after a while —
// on pc, a session of the shim s, resets the client's connection while it runs (the shim's
// write of its notice fails: the session ends, its backend runs on), and drains the shim (4 s
// bound). It returns whether row id is on the local database (db) once the procedure's backend
// is gone, and Drain's error. The test is skipped when the backend ended with its session.
func orphanedCallDrained(t *testing.T, ctx context.Context, s *testShim, db *sql.DB, pc *pgconn.PgConn, id int) (bool, error) {
	t.Helper()
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := (&pgproto3.Query{String: "CALL orphan()"}).Encode(nil)
	if _, err := hj.Conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the CALL", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL orphan()' AND state = 'active'`) > 0
	})
	// The client goes away, resetting its connection.
	if tc, ok := hj.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	hj.Conn.Close()
	time.Sleep(2 * time.Second) // the notice came, the shim's write to the client failed
	if n := queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL orphan()' AND state = 'active'`); n == 0 {
		t.Skip("the procedure's backend ended with its session")
	}
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	err = s.Drain(dctx)
	t.Logf("Drain: %v", err)
	waitForLong(t, "the procedure's end", 15*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL orphan()' AND state = 'active'`) == 0
	})
	return queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = $1`, id) != 0, err
}
