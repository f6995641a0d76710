package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestDrainUnwrappedWrite: an autocommit statement the lexer takes for a read runs unwrapped,
// in PostgreSQL's own implicit transaction, counted nowhere: one that writes all the same (a
// function created behind the shim's back) and is still running at a handover commits on the
// local database after Drain returned. Drain now waits for it, and ends it when its bound runs
// out, as what is counted in the gate.
func TestDrainUnwrappedWrite(t *testing.T) {
	t.Parallel()
	var announced atomic.Int32
	s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
	ctx := capCtx(t, 60*time.Second)
	if _, err := db.ExecContext(ctx, `CREATE FUNCTION w3(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(8); INSERT INTO acct VALUES (i, 1); RETURN i; END $$`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "SELECT w3(9)")
		done <- err
	}()
	waitForLong(t, "the statement", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT w3%' AND state = 'active'`) > 0
	})
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 6*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Drain(dctx)
	t.Logf("Drain: %v after %v", err, time.Since(start).Round(time.Millisecond))
	// Drain may return nil once it ended the statement (TestHandoverDrainEndsRead): the
	// caller's Barrier ships what it committed before its end. Not with it still running.
	if n := queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT w3%'`); n != 0 {
		t.Errorf("Drain returned (%v) with a statement that writes still running", err)
	}
	var serr error
	select {
	case serr = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the statement still runs")
	}
	t.Logf("statement: %v", serr)
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 9`); n != 0 {
		t.Errorf("a write the lexer took for a read, in flight at the handover, committed on the local database after Drain returned")
	}
}
