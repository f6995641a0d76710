package main

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/txshim"
)

// TestSoloCatchUpHolds: a shim can go solo while its Shipper stays online and in step — a plain
// commit in dual mode whose reply could not mark the stream (the client's role may not run
// pg_logical_emit_message) goes on alone (txshim awaitShipped) without taking the Shipper
// down. CatchUp then found the peer synced and returned at once, without holding commits or
// shipping the tail, and catchUp turned the shim dual and published peer_synced = true while a
// solo commit the client saw was not on the peer yet (its ship waits there): a failover at that
// moment lost it (DESIGN §3, §5.5). A solo shim's catch-up now holds commits and ships the tail
// before it turns the shim dual.
func TestSoloCatchUpHolds(t *testing.T) {
	t.Parallel()
	d, _, pdb := dualSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); d.shim.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-served })

	for _, q := range []string{
		`CREATE ROLE app`,
		`GRANT ALL ON acct TO app`,
		`REVOKE EXECUTE ON FUNCTION pg_catalog.pg_logical_emit_message(boolean, text, text) FROM PUBLIC`,
	} {
		if _, err := d.local.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var dbname string
	if err := d.local.QueryRowContext(ctx, `SELECT current_database()`).Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	port := d.shim.Addr().(*net.TCPAddr).Port
	app, err := txshim.OpenDB(fmt.Sprintf("postgres://app@127.0.0.1:%d/%s?sslmode=disable", port, dbname))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	conn, err := app.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The client works under a role of its own (the shim's backend connection is local_dsn's
	// user's).
	if _, err := conn.ExecContext(ctx, `SET ROLE app`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the shim has read its lists of writing functions (Serve)
	// A function that writes, made behind the shim's back: a read through the shim that calls
	// it commits plainly, and its reply waits for the peer — whose mark cannot be written.
	if _, err := d.local.ExecContext(ctx, `CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE AS 'INSERT INTO acct VALUES (1, 1) RETURNING 1'`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN; SELECT bump(); COMMIT`); err != nil {
		t.Fatalf("a write taken for a read: %v", err)
	}
	if mode, _ := d.shim.Mode(); mode != txshim.ModeSolo {
		t.Fatalf("after a plain commit whose reply could not mark the stream: shim %s, want solo; stats %+v", mode, d.shim.Stats())
	}
	t.Logf("shim solo, Shipper in step: %v (peer-downs %d)", d.ship.PeerSynced(), d.peerDowns())

	// The peer takes no insert into acct for now: the next solo commit stays unshipped.
	lock, err := pdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	waitFor(t, "row 1 on the peer", func() bool {
		var n int
		return pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 1`).Scan(&n) == nil && n == 1
	})
	if _, err := lock.ExecContext(ctx, `LOCK TABLE acct IN SHARE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO acct VALUES (2, 2)`); err != nil {
		t.Fatalf("solo commit: %v", err)
	}
	// The catch-up round, with the solo commit acknowledged and its ship waiting on the peer.
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	d.catchUp(cctx)
	ccancel()
	mode, term := d.shim.Mode()
	var n int
	if err := pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 2`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if mode == txshim.ModeDual && n == 0 {
		t.Errorf("catch-up turned the shim dual (peer_synced = true published: %v) while the peer lacks a solo commit the client saw",
			d.maySayInSync(term, d.peerDowns()))
	}
	lock.Rollback()
	// Once the peer takes writes again, the next round brings it in step.
	deadline := time.Now().Add(30 * time.Second)
	for {
		d.catchUp(ctx)
		if mode, _ := d.shim.Mode(); mode == txshim.ModeDual {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shim did not go dual once the peer took writes again")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 2`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("dual again, and the solo commit is not on the peer (%d rows)", n)
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
