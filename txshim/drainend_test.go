package txshim

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestDrainEndsHungCommit: a handover's Drain whose bound ran out returned with a commit still
// in flight, and that commit went on: here a plain commit (a write the lexer took for a read,
// a function created behind the shim's back) whose COMMIT runs a deferred constraint trigger
// that takes longer than the bound. It committed on the local database after Drain returned —
// after "released", with the site backup. Drain now ends what is still in flight within its
// bound (the session's backend terminated: the transaction rolled back), and the client hears
// why (57P01).
func TestDrainEndsHungCommit(t *testing.T) {
	t.Parallel()
	var announced atomic.Int32
	s, db, _ := unseenWriterShim(t, config.PeerDownContinue, &announced)
	ctx := capCtx(t, 60*time.Second)
	for _, q := range []string{
		`CREATE TABLE slowc (id int)`,
		`CREATE FUNCTION slowtrig() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(8); RETURN NULL; END $$`,
		`CREATE CONSTRAINT TRIGGER slowc_t AFTER INSERT ON slowc DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slowtrig()`,
		`CREATE FUNCTION w2(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO slowc VALUES (i) RETURNING i'`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.connect(t).Exec(ctx, "BEGIN; SELECT w2(1); COMMIT")
		done <- err
	}()
	waitForLong(t, "the COMMIT running the deferred trigger", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'COMMIT' AND wait_event = 'PgSleep'`) > 0
	})
	s.SetMode(ModeReadOnly, 1)
	dctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Drain(dctx)
	took := time.Since(start)
	t.Logf("Drain: %v after %v", err, took.Round(time.Millisecond))
	if err == nil {
		t.Fatal("Drain succeeded with a commit hung past its bound")
	}
	if took > 4*time.Second+500*time.Millisecond {
		t.Errorf("Drain took %v, past its bound of 4 s", took)
	}
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the hung commit still runs")
	}
	t.Logf("the hung commit: %v", err)
	if n := queryOne[int](t, db, `SELECT count(*) FROM slowc`); n != 0 {
		t.Errorf("the commit in flight past the drain's bound committed on the local database after Drain returned (%d rows)", n)
	}
	if pgCode(err) != "57P01" {
		t.Errorf("the hung commit ended by the drain: %v, want 57P01 from tandem", err)
	}
}
