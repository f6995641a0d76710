package main

import (
	"context"
	"database/sql"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// dualSite2Block is dualSite2 with peer_down = "block": the master never goes solo, and a
// plain commit the peer does not take is committed here alone all the same (txshim peerLacks).
func dualSite2Block(t *testing.T) (*database, *pgtest.Cluster) {
	t.Helper()
	local, peer := pgtest.Start(t), pgtest.Start(t)
	ldb, pdb := local.Open(t, local.Database()), peer.Open(t, peer.Database())
	for _, db := range []*sql.DB{ldb, pdb} {
		if _, err := db.Exec(`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	localDSN, peerDSN := local.DSN(local.Database()), peer.DSN(peer.Database())
	if err := txshim.Install(ctx, "site2", localDSN, peerDSN, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := txshim.WriteTermRecord(ctx, ldb, 1, "site2", true); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", DataDir: t.TempDir(),
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: localDSN, PeerDSN: peerDSN, PeerDown: config.PeerDownBlock,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
	d, err := newDatabase(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	shipped := make(chan error, 1)
	go func() { shipped <- d.ship.Run(rctx) }()
	t.Cleanup(func() {
		stop()
		<-shipped
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.shim.Serve(ctx) // closes the listener Start bound
		d.close()
	})
	if synced, err := d.promote(ctx, 1); err != nil || !synced {
		t.Fatalf("promote(1): synced %v, %v; want dual", synced, err)
	}
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
	sctx, stopServe := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.shim.Serve(sctx) }()
	t.Cleanup(func() {
		stopServe()
		<-served
	})
	u, err := url.Parse(d.cfg.LocalDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = d.shim.Addr().String()
	client, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })

	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Resume() })
	_, err = client.ExecContext(ctx, `CALL ins(1)`)
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
	// The drain's bound, short here: the test would otherwise wait out 37 s.
	defer func(f func(time.Duration) time.Duration) { drainBound = f }(drainBound)
	drainBound = func(time.Duration) time.Duration { return 3 * time.Second }
	bound := drainBound(d.cfg.CommitTimeout)
	called := make(chan error, 1)
	go func() {
		_, err := client.ExecContext(ctx, `CALL slow($1)`, (bound + 5*time.Second).Seconds())
		called <- err
	}()
	for {
		var n int
		if err := d.local.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'CALL slow%' AND state = 'active'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case err := <-called:
			t.Fatalf("CALL ended before the handover: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
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
