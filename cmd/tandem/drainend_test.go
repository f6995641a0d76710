package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestHandoverDrainEndsProcedure: a handover's drain whose bound ran out left what was still
// in flight through the shim running — here a CALL of a procedure that commits after the
// bound, counted in the shim's commit gate for its whole run — and the procedure committed on
// the local database after "released", with this site backup and its shipper no longer
// shipping: a write on the old master's database that the successor never gets. The drain now
// ends what is still in flight once its bound runs out (the sessions' backends terminated, so
// that what they had not committed is rolled back), within the same bound, and the session
// ends with an error that says why. A transaction a session began in dual mode and commits
// after the mode change is refused by the commit check (read-only mode), as before. With
// what was in flight ended, the barrier still runs: the peer has the procedure's commit from
// before, and the release says peer_synced = true — so that a long statement running at a
// handover does not keep the other site from taking over.
func TestHandoverDrainEndsProcedure(t *testing.T) {
	d, peer, _ := dualSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := d.local.ExecContext(ctx, `CREATE PROCEDURE slowcommit(s float8) LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO acct VALUES (1, 1); COMMIT; PERFORM pg_sleep(s); INSERT INTO acct VALUES (2, 2); COMMIT; END $$`); err != nil {
		t.Fatal(err)
	}
	client, dsn := serveShim(t, d)
	// A transaction begun in dual mode, committed after the handover.
	tx, err := client.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO acct VALUES (3, 3)`); err != nil {
		t.Fatal(err)
	}
	bound := shortDrain(t, 4*time.Second)
	// Its own connection, not database/sql's pool, which would run the CALL again on another
	// connection once this one failed.
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	called := runActive(t, ctx, d, "CALL slowcommit", func() error {
		_, err := pc.Exec(ctx, fmt.Sprintf(`CALL slowcommit(%f)`, (bound+3*time.Second).Seconds())).ReadAll()
		return err
	})
	start := time.Now()
	d.stepDown(ctx, 1)
	took := time.Since(start)
	t.Logf("handover with a procedure in flight took %v (bound %v)", took.Round(time.Millisecond), bound)
	if took > bound+time.Second {
		t.Errorf("the handover took %v, more than the drain's bound %v", took, bound)
	}
	// "released" would go out now: nothing may commit on this database after it.
	var callErr error
	select {
	case callErr = <-called:
	case <-time.After(10 * time.Second):
		t.Fatal("the CALL still runs 10 s after the handover's drain ended")
	}
	t.Logf("CALL: %v", callErr)
	if callErr == nil || !strings.Contains(callErr.Error(), "tandem") {
		t.Errorf("the CALL ended by the handover: %v, want an error from tandem that says why", callErr)
	}
	var n int
	if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 2`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("the procedure in flight past the handover's drain committed on the local database after the release (row 2 there): the successor never gets it")
	}
	if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 1`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("the procedure's commit before the handover: %d rows, want 1", n)
	}
	if d.peerDowns() != 0 || d.shim.WentSolo(1) {
		t.Errorf("the handover ended what was in flight and the peer has everything, yet peer_synced = false was recorded (downs %d, went solo %v): the other site may not take over",
			d.peerDowns(), d.shim.WentSolo(1))
	}
	if err := peer.Open(t, peer.Database()).QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 1`).Scan(&n); err != nil || n != 1 {
		t.Errorf("the procedure's commit before the handover on the peer: %d rows, %v; want 1 (the barrier)", n, err)
	}
	if err := tx.Commit(); err == nil {
		t.Errorf("a transaction begun in dual mode committed after the handover")
	}
	if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 3`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("a transaction begun in dual mode committed on the local database after the handover")
	}
	waitDrained(t, d)
}
