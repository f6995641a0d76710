package main

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// dualSite2Block is dualSite2 with peer_down = "block": the master never goes solo, and a
// plain commit the peer does not take is committed here alone all the same (txshim peerLacks).
func dualSite2Block(t *testing.T) (*database, *pgtest.Cluster) {
	t.Helper()
	d, peer, _ := dualSite2With(t, config.PeerDownBlock)
	return d, peer
}

// caughtUpAfterPeerLacks is dualSite2Block serving, after a plain commit the peer did not take
// (a procedure's, the peer frozen: committed here alone, 08007), which counts term 1 as one the
// shim committed alone in (WentSolo) and records peer_synced = false, and a catch-up that then
// shipped it and said peer_synced = true again. It returns a client of the shim.
func caughtUpAfterPeerLacks(t *testing.T, ctx context.Context) (*database, *pgtest.Cluster, *sql.DB) {
	t.Helper()
	d, peer := dualSite2Block(t)
	for _, q := range []string{
		`CREATE PROCEDURE slow(s float8) LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(s); END $$`,
		`CREATE PROCEDURE ins(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`,
	} {
		if _, err := d.local.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	client, _ := serveShim(t, d)

	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Resume() })
	_, err := client.ExecContext(ctx, `CALL ins(1)`)
	t.Logf("CALL with the peer frozen: %v", err)
	if !d.shim.WentSolo(1) || d.peerDowns() == 0 {
		t.Fatalf("a procedure's commit the peer did not take: went solo %v, downs %d", d.shim.WentSolo(1), d.peerDowns())
	}
	if err := peer.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !d.ship.PeerSynced() {
		if time.Now().After(deadline) {
			t.Fatal("catch-up did not bring the peer in step")
		}
		d.catchUp(ctx)
		time.Sleep(100 * time.Millisecond)
	}
	var n int
	if err := d.peer.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 1`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the peer lacks the procedure's row after catch-up: %d, %v", n, err)
	}
	return d, peer, client
}

// TestHandoverDrainRunsOutAfterCatchUp: with peer_down = "block", a plain commit the peer did
// not take is committed here alone and counts the term as one the shim committed alone in
// (WentSolo), with peer_synced = false recorded; catch-up then ships it and says peer_synced =
// true again — but the shim, dual throughout, kept counting the term as committed alone in. A
// later handover whose drain ran out (a procedure outlasting the bound, a write the peer lacks)
// took that for "peer_synced = false is recorded already", and recorded nothing: "released"
// said the peer had everything.
func TestHandoverDrainRunsOutAfterCatchUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, peer, client := caughtUpAfterPeerLacks(t, ctx)
	bound := shortDrain(t, 3*time.Second)
	called := runActive(t, ctx, d, "CALL slow", func() error {
		_, err := client.ExecContext(ctx, `CALL slow($1)`, (bound + 5*time.Second).Seconds())
		return err
	})
	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (2, 2)`); err != nil {
		t.Fatal(err)
	}
	before := d.peerDowns()
	d.stepDown(ctx, 1)
	if d.peerDowns() == before {
		t.Errorf("the handover's drain ran out with a procedure in flight and a row the peer lacks, after a catch-up had made the peer whole again, and peer_synced = false was never recorded (downs %d, went solo %v): \"released\" says the peer has everything",
			d.peerDowns(), d.shim.WentSolo(1))
	}
	peer.Resume()
	<-called
	waitDrained(t, d)
}

// TestHandoverBarrierAfterCatchUp: the same for the handover's barrier (the drain done in
// time): after such a catch-up it was skipped, the term taken for one whose peer_synced =
// false was recorded already, and a write made plainly before the handover that the frozen
// peer lacks went unrecorded.
func TestHandoverBarrierAfterCatchUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d, peer, _ := caughtUpAfterPeerLacks(t, ctx)
	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (2, 2)`); err != nil {
		t.Fatal(err)
	}
	before := d.peerDowns()
	d.stepDown(ctx, 1)
	if d.peerDowns() == before {
		t.Errorf("the handover's barrier did not find a row the frozen peer lacks, after a catch-up had made the peer whole again, and peer_synced = false was never recorded (downs %d, went solo %v): \"released\" says the peer has everything",
			d.peerDowns(), d.shim.WentSolo(1))
	}
	peer.Resume()
	waitDrained(t, d)
}
