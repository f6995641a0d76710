package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// sendFlush sends what was queued and a Flush, without reading.
func (r *rawSession) sendFlush() {
	r.t.Helper()
	r.fe.Send(&pgproto3.Flush{})
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// TestFlushedCallGateEdges: a procedure sent before its request's Sync stays counted in the
// commit gate until the Sync's reply (session.procGate). A hold asked for meanwhile waits for
// that reply — and the request's later procedures, in parts before the Sync or in its last,
// must not wait for that hold (it waits for them): no deadlock. A session that ends before
// its Sync leaves the gate (once its backend is gone).
func TestFlushedCallGateEdges(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE fe(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; END $$`)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, 60*time.Second)

	t.Run("holdWaitsForSync", func(t *testing.T) {
		r := dialRaw(t, s)
		defer r.conn.Close()
		r.conn.SetDeadline(time.Now().Add(20 * time.Second))
		r.stmt("CALL fe(61)")
		r.sendFlush()
		if got, err := r.until('C'); err != nil {
			t.Fatalf("%q %v", got, err)
		}
		held := make(chan time.Time, 1)
		go func() {
			hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			release, err := s.HoldCommits(hctx)
			if err != nil {
				t.Errorf("hold: %v", err)
				held <- time.Time{}
				return
			}
			held <- time.Now()
			release()
		}()
		time.Sleep(300 * time.Millisecond)
		select {
		case <-held:
			t.Fatal("a hold was granted while a procedure sent before its Sync was in flight")
		default:
		}
		// More procedures while the hold waits: before the Sync, and in the last part.
		r.stmt("CALL fe(62)")
		r.sendFlush()
		if got, err := r.until('C'); err != nil {
			t.Fatalf("second part: %q %v", got, err)
		}
		start := time.Now()
		r.pipeline("CALL fe(63)")
		got, err := r.until('Z')
		if err != nil || time.Since(start) > 5*time.Second {
			t.Fatalf("reply %q %v after %v: the request's own procedures waited for the hold that waits for them", got, err, time.Since(start))
		}
		at := <-held
		if at.IsZero() || at.Before(start) {
			t.Errorf("hold granted at %v, before the request's Sync (%v)", at, start)
		}
		if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id IN (61, 62, 63)`); n != 3 {
			t.Errorf("%d rows, want 3", n)
		}
	})

	t.Run("endsBeforeSync", func(t *testing.T) {
		r := dialRaw(t, s)
		r.stmt("CALL fe(64)")
		r.sendFlush()
		r.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if got, err := r.until('C'); err != nil {
			t.Fatalf("%q %v", got, err)
		}
		r.conn.Close()
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		release, err := s.HoldCommits(hctx)
		if err != nil {
			t.Fatalf("hold after the session ended before its Sync: %v (the gate was not left)", err)
		}
		release()
		t.Logf("hold granted after %v", time.Since(start).Round(time.Millisecond))
	})
}

// TestFlushedCallFailsWaitsPeer: a procedure sent before its Sync that committed, then failed:
// PostgreSQL skips the rest of the request, and the Sync's reply must still wait until the
// peer has what it committed (here it never does: the shim goes solo first).
func TestFlushedCallFailsWaitsPeer(t *testing.T) {
	t.Parallel()
	s, db, _, announced := unseenShim(t, `CREATE PROCEDURE ff(i int) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO acct VALUES (i, 1); COMMIT; RAISE EXCEPTION 'after commit'; END $$`)
	r := dialRaw(t, s)
	defer r.conn.Close()
	r.conn.SetDeadline(time.Now().Add(15 * time.Second))
	r.stmt("CALL ff(71)")
	r.sendFlush()
	if got, err := r.until('E'); err != nil {
		t.Fatalf("%q %v", got, err)
	}
	// A later part, skipped by PostgreSQL, then the Sync.
	r.stmt("SELECT 1")
	r.sendFlush()
	start := time.Now()
	r.pipeline()
	got, err := r.until('Z')
	t.Logf("%s %v after %v, peer down announced %d times", got, err, time.Since(start).Round(time.Millisecond), announced.Load())
	if err != nil {
		t.Fatal(err)
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = 71`); n != 1 {
		t.Fatalf("%d rows committed, want 1", n)
	}
	if announced.Load() == 0 {
		t.Error("the request of a procedure that committed, then failed, was answered without the peer having its commit, and the shim did not go solo")
	}
}
