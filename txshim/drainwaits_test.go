package txshim

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/tandem-ha/tandem/config"
)

// TestDrainWaitsShortCommit: a handover's Drain waits for what is in flight and ends within its
// bound — a dual commit whose PREPARE TRANSACTION runs a deferred trigger for a second — and
// returns nil only once it is done: committed on the local database, and the peer told to
// commit it, before Drain returns (the other drain tests end what is in flight at once).
func TestDrainWaitsShortCommit(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	ctx := capCtx(t, 60*time.Second)
	c.Exec(t, `CREATE TABLE slowd (id int PRIMARY KEY);
CREATE FUNCTION slowd_trig() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slowd_t AFTER INSERT ON slowd DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slowd_trig();`)
	db := c.Open(t, c.Database())
	done := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "BEGIN; INSERT INTO slowd VALUES (1); COMMIT")
		done <- err
	}()
	waitForLong(t, "the commit running the deferred trigger", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'`) > 0
	})
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Drain(dctx)
	t.Logf("Drain: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("Drain did not wait for a commit done well within its bound: %v", err)
	}
	if n := queryOne[int](t, db, `SELECT count(*) FROM slowd`); n != 1 {
		t.Errorf("Drain returned nil before the commit in flight committed on the local database (%d rows)", n)
	}
	calls := peer.take()
	if !slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "commit ") }) {
		t.Errorf("Drain returned nil before the peer was told to commit the commit in flight: peer calls %v", calls)
	}
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the commit still runs")
	}
	if err != nil {
		t.Errorf("the commit Drain waited for: %v", err)
	}
}

// TestDrainWaitsShortUnwrapped: a statement the lexer took for a read that writes all the same
// (a function created behind the shim's back), running a second at a handover, and an extended
// request's part executed before a Flush whose Sync comes half a second into the drain, are
// waited for: Drain returns nil once their implicit transactions committed, not before.
func TestDrainWaitsShortUnwrapped(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		id   int
	}{{"query", 21}, {"flushed", 22}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var announced atomic.Int32
			s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
			ctx := capCtx(t, 60*time.Second)
			if _, err := db.ExecContext(ctx, `CREATE FUNCTION ws(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); INSERT INTO acct VALUES (i, 1); RETURN i; END $$`); err != nil {
				t.Fatal(err)
			}
			r := dialRaw(t, s)
			r.conn.SetDeadline(time.Now().Add(20 * time.Second))
			var sync func()
			if tc.name == "query" {
				r.simple("SELECT ws(21)")
				waitForLong(t, "the statement", 10*time.Second, func() bool {
					return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'`) > 0
				})
			} else {
				r.stmt("SELECT w(22)")
				t.Logf("before the Sync: %s", r.flush('C'))
				sync = func() {
					time.Sleep(500 * time.Millisecond)
					r.fe.SendSync(&pgproto3.Sync{})
					r.fe.Flush()
				}
			}
			s.SetMode(ModeReadOnly, 1)
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if sync != nil {
				go sync()
			}
			start := time.Now()
			err := s.Drain(dctx)
			t.Logf("Drain: %v after %v", err, time.Since(start).Round(time.Millisecond))
			if err != nil {
				t.Errorf("Drain did not wait for a statement done well within its bound: %v", err)
			}
			if n := queryOne[int](t, db, `SELECT count(*) FROM acct WHERE id = $1`, tc.id); n != 1 {
				t.Errorf("Drain returned before the statement in flight committed on the local database")
			}
			got, rerr := r.until('Z')
			t.Logf("the reply: %s %v", got, rerr)
			if rerr != nil || strings.Contains(got, "E") {
				t.Errorf("the statement Drain waited for: %s %v", got, rerr)
			}
		})
	}
}
