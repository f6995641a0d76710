package txshim

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestOrphanWhileWatchAsks: watchOrphans asks pg_stat_activity which of the orphans it knows
// of live on, and then forgot every orphan not in the answer — one that came while it asked
// too, whose backend it never asked about. Here the question waits (a lock on pg_database
// that pg_stat_activity's view needs), and a second session ends in flight meanwhile: its
// backend, running a procedure, was forgotten at once, a Drain returned nil with it running,
// and the procedure committed on the local database after it.
func TestOrphanWhileWatchAsks(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE orphan(id int, first float8, after float8) LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(first); RAISE NOTICE '%', repeat('x', 100000); PERFORM pg_sleep(after); INSERT INTO acct VALUES (id, id); COMMIT; END $$`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	ctx := capCtx(t, time.Minute)
	lock, err := pgconn.Connect(ctx, c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close(context.Background())
	one := func(q string) string {
		t.Helper()
		rr := lock.ExecParams(ctx, q, nil, nil, nil, nil).Read()
		if rr.Err != nil {
			t.Fatalf("%s: %v", q, rr.Err)
		}
		if len(rr.Rows) != 1 || len(rr.Rows[0]) != 1 {
			return ""
		}
		return string(rr.Rows[0][0])
	}
	// call sends a CALL on a new session and returns its client's connection.
	call := func(sql string) net.Conn {
		pc, err := pgconn.Connect(ctx, s.dsn(pgtest.Superuser))
		if err != nil {
			t.Fatal(err)
		}
		hj, err := pc.Hijack()
		if err != nil {
			t.Fatal(err)
		}
		buf, _ := (&pgproto3.Query{String: sql}).Encode(nil)
		if _, err := hj.Conn.Write(buf); err != nil {
			t.Fatal(err)
		}
		waitForLong(t, sql, 10*time.Second, func() bool {
			return one(`SELECT count(*) FROM pg_stat_activity WHERE query = '`+strings.ReplaceAll(sql, "'", "''")+`' AND state = 'active'`) != "0"
		})
		return hj.Conn
	}
	reset := func(nc net.Conn) {
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		nc.Close()
	}
	// The first orphan: its client goes away, the notice's write to it fails.
	a := call("CALL orphan(1, 0.2, 60)")
	reset(a)
	waitForLong(t, "the first orphan", 10*time.Second, func() bool { return s.gate.orphanCount() == 1 })
	// The second: its client gone before its notice (3 s into its run) comes.
	b := call("CALL orphan(2, 3, 8)")
	reset(b)
	// The watch's question waits for the lock; the second session ends meanwhile. The watch
	// must have its connection first: one still starting up would wait for the lock in its
	// start-up, before any question (ci208).
	waitForLong(t, "the watch's connection", 10*time.Second, func() bool {
		return one(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pid::pg_catalog.text%' AND pid <> pg_backend_pid()`) != "0"
	})
	one("BEGIN")
	one("LOCK TABLE pg_catalog.pg_database IN ACCESS EXCLUSIVE MODE")
	waitForLong(t, "the watch's question waiting for the lock", 10*time.Second, func() bool {
		return one(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%pid::pg_catalog.text%'`) != "0"
	})
	waitForLong(t, "the second orphan", 10*time.Second, func() bool { return s.gate.orphanCount() == 2 })
	one("COMMIT")
	// The first orphan's backend ends; the second's runs on.
	one(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'CALL orphan(1, 0.2, 60)'`)
	time.Sleep(500 * time.Millisecond)
	if one(`SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL orphan(2, 3, 8)' AND state = 'active'`) == "0" {
		t.Fatal("the second orphan's backend ended")
	}
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	err = s.Drain(dctx)
	t.Logf("Drain: %v", err)
	waitForLong(t, "the second procedure's end", 20*time.Second, func() bool {
		return one(`SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL orphan(2, 3, 8)'`) == "0"
	})
	if n := one(`SELECT count(*) FROM acct WHERE id = 2`); n != "0" {
		t.Errorf("the procedure of a session that ended while the orphan watch asked committed on the local database after Drain returned (Drain: %v)", err)
	}
}
