package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestDrainOversizedReplyProcedure: a session whose backend sends a reply larger than
// max_message ends (54000, serverLoop), its backend alive: PostgreSQL goes on with the
// procedure it runs until it next writes to the closed connection, and its later COMMIT goes
// through. serverLoop took the reply it refused for the backend's end (backendEnded), so the
// session did not leave its backend watched (Shim.orphaned): it left the commit gate at once,
// a handover's Drain found nothing in flight and returned nil, and the procedure committed on
// the local database after it.
func TestDrainOversizedReplyProcedure(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE big() LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.5); RAISE NOTICE '%', repeat('x', 20000); PERFORM pg_sleep(5); INSERT INTO acct VALUES (5, 5); COMMIT; END $$`)
	// A notice that fits in the sockets' buffers, so that the backend's write of it succeeds.
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1,
		func(cfg *config.TxShim) { cfg.MaxMessage = 16 << 10 })
	db := c.Open(t, c.Database())
	ctx := capCtx(t, time.Minute)
	done := make(chan error, 1)
	conn := s.connect(t)
	go func() {
		_, err := conn.Exec(ctx, "CALL big()")
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("the CALL: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the session of the oversized notice did not end")
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL big()' AND state = 'active'`); n == 0 {
		t.Skip("the procedure's backend ended with its session")
	}
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	err := s.Drain(dctx)
	t.Logf("Drain: %v", err)
	waitForLong(t, "the procedure's end", 15*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL big()' AND state = 'active'`) == 0
	})
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 5`); n != 0 {
		t.Errorf("the procedure of a session ended on an oversized reply committed on the local database after Drain returned (Drain: %v)", err)
	}
}
