package txshim

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// otherHostShim starts a solo shim whose local_dsn lists first a cluster that is full while the
// test's session starts, then the session's own (as TestStalledClientOtherHost): the session's
// backend is on the second host, and the first takes connections again once the session runs
// (release). The procedure p sleeps, then writes row 7 of acct and commits.
func otherHostShim(t *testing.T) (*testShim, *pgtest.Cluster, func()) {
	t.Helper()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE p() LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(7); INSERT INTO acct VALUES (7, 7); COMMIT; END $$`)
	other := pgtest.Start(t, pgtest.WithSetting("max_connections", "3"), pgtest.WithSetting("superuser_reserved_connections", "0"))
	ctx := capCtx(t, time.Minute)
	full := fillConnections(t, ctx, other, 3)
	release := func() {
		for _, pc := range full {
			pc.Close(context.Background())
		}
		full = nil
	}
	t.Cleanup(release)
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable", pgtest.Superuser, other.Port(), c.Port(), c.Database())
	s := startShimDSN(t, c, dsn, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	return s, c, release
}

// TestDrainEndsOtherHost: a handover's Drain that runs out ends the sessions still in flight
// by terminating their backends (endInFlight). With local_dsn listing several hosts, it did so
// on the first host that took its connection, which need not be the session's backend's: there
// the process id was nobody's (or another's, whose session it ended), the backend was "gone"
// from that host's pg_stat_activity at once, and the procedure ran on and committed on the
// local database after Drain returned.
func TestDrainEndsOtherHost(t *testing.T) {
	t.Parallel()
	s, c, release := otherHostShim(t)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, time.Minute)
	done := make(chan error, 1)
	conn := s.connect(t)
	go func() {
		_, err := conn.Exec(ctx, "CALL p()")
		done <- err
	}()
	waitForLong(t, "the CALL", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL p()' AND state = 'active'`) > 0
	})
	release()
	drainPastCall(t, ctx, s, db, 4*time.Second, done, 7, "its backend was terminated on another host of local_dsn")
}

// drainPastCall drains s (read-only, term 1) within bound while a procedure runs (done: its
// result), waits for the procedure's end, and checks that the row id it writes in acct did not
// commit on the local database: the drain ended it. why says how it would have.
func drainPastCall(t *testing.T, ctx context.Context, s *testShim, db *sql.DB, bound time.Duration, done <-chan error, id int, why string) {
	t.Helper()
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	err := s.Drain(dctx)
	t.Logf("Drain: %v", err)
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the procedure still runs")
	}
	t.Logf("the CALL: %v", err)
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = $1`, id); n != 0 {
		t.Errorf("the procedure in flight past the drain's bound committed on the local database after Drain returned: %s", why)
	}
}

// TestDrainOrphanOtherHost: the backend of a session that ended in flight (orphaned) is watched
// until it leaves pg_stat_activity (watchOrphans), and a Drain waits for it. The watch asked the
// first host of local_dsn that took its connection, which need not be the backend's: there the
// process id was not found, the orphan was forgotten at once, Drain returned nil, and the
// procedure committed on the local database after it.
func TestDrainOrphanOtherHost(t *testing.T) {
	t.Parallel()
	s, c, release := otherHostShim(t)
	c.Exec(t, `CREATE PROCEDURE orphan() LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.5); RAISE NOTICE '%', repeat('x', 100000); PERFORM pg_sleep(5); INSERT INTO acct VALUES (8, 8); COMMIT; END $$`)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, time.Minute)
	pc, err := pgconn.Connect(ctx, s.dsn(pgtest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	release()
	committed, err := orphanedCallDrained(t, ctx, s, db, pc, 8)
	if committed {
		t.Errorf("the procedure of a session the shim ended committed on the local database after Drain returned (Drain: %v): its backend was watched on another host of local_dsn", err)
	}
}
