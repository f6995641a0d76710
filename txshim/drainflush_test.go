package txshim

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/tandem-ha/tandem/config"
)

// unseenShim starts unseenWriterShim (the peer never gets the writes; the shim goes on alone),
// runs the given statements on its local database (the procedures a test calls), and returns
// the shim, that database, a 60-second context and the count of peer-down announcements.
func unseenShim(t *testing.T, stmts ...string) (*testShim, *sql.DB, context.Context, *atomic.Int32) {
	t.Helper()
	announced := new(atomic.Int32)
	s, db, _ := unseenWriterShim(t, config.PeerDownContinue, announced)
	ctx := capCtx(t, 60*time.Second)
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return s, db, ctx, announced
}

// readOnlyDrain sets the shim read-only (a handover) and drains it within bound, logging and
// returning how long Drain took and its error.
func readOnlyDrain(t *testing.T, ctx context.Context, s *testShim, bound time.Duration) (time.Duration, error) {
	t.Helper()
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	start := time.Now()
	err := s.Drain(dctx)
	took := time.Since(start)
	t.Logf("Drain: %v after %v", err, took.Round(time.Millisecond))
	return took, err
}

// TestDrainFlushedPart: an extended request's part sent before its Sync, with a Flush, runs on
// the backend at once, and its implicit transaction commits at the Sync, past the commit gate.
// A write in it (one the lexer took for a read: a function created behind the shim's back; a
// procedure), executed or still running at a handover, its Sync not yet sent, committed on the
// local database after Drain returned nil at once. Drain now waits for the Sync's reply, and
// ends the session at its bound; a write the shim wrapped in its own block (INSERT) is not
// waited for: its COMMIT comes through the gate, refused. Messages sent without a Flush wait in
// the shim for their Sync, and run under the mode the Sync finds (refused).
func TestDrainFlushedPart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		id        int
		running   bool // Drain starts while the Execute runs, not after its CommandComplete
		buffered  bool // no Flush: the shim holds the messages until the Sync
	}{
		{name: "buffered", sql: "SELECT w(12)", id: 12, buffered: true},
		{name: "bufferedcall", sql: "CALL fw_proc(13)", id: 13, buffered: true},
		{name: "unseen", sql: "SELECT w(7)", id: 7},
		{name: "insert", sql: "INSERT INTO acct VALUES (8, 1)", id: 8},
		{name: "running", sql: "SELECT fw_sleep(9)", id: 9, running: true},
		{name: "call", sql: "CALL fw_proc(10)", id: 10},
		{name: "callcommit", sql: "CALL fw_proccommit(11)", id: 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, db, ctx, _ := unseenShim(t,
				`CREATE FUNCTION fw_sleep(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); INSERT INTO acct VALUES (i, 1); RETURN i; END $$`,
				`CREATE PROCEDURE fw_proc(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); END $$`,
				`CREATE PROCEDURE fw_proccommit(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i + 100, 1); COMMIT; INSERT INTO acct VALUES (i, 1); END $$`)
			r := dialRaw(t, s)
			r.stmt(tc.sql)
			switch {
			case tc.buffered:
				r.fe.Flush()
			case tc.running:
				r.fe.Send(&pgproto3.Flush{})
				r.fe.Flush()
				waitForLong(t, "the statement", 10*time.Second, func() bool {
					return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'`, tc.sql) > 0
				})
			default:
				t.Logf("before the Sync: %s", r.flush('C'))
			}
			_, err := readOnlyDrain(t, ctx, s, 3*time.Second)
			r.fe.SendSync(&pgproto3.Sync{})
			r.fe.Flush()
			r.conn.SetDeadline(time.Now().Add(10 * time.Second))
			got, rerr := r.until('Z')
			t.Logf("the Sync: %s %v", got, rerr)
			if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = $1`, tc.id); n != 0 {
				t.Errorf("a write executed before its Sync, in flight at the handover, committed on the local database after Drain returned (%v)", err)
			}
		})
	}
}
