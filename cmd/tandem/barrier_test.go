package main

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// dualSite2 is site2's database side, master of term 1 in dual mode, over a local database and
// a peer database of its own (each with an empty table acct), its Shipper running. The peer's
// cluster and the local database are returned for the test to pause and to write on.
func dualSite2(t *testing.T) (*database, *pgtest.Cluster, *sql.DB) {
	t.Helper()
	return dualSite2With(t, config.PeerDownContinue)
}

// dualSite2With is dualSite2 with peer_down set to peerDown.
func dualSite2With(t *testing.T, peerDown string) (*database, *pgtest.Cluster, *sql.DB) {
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
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: localDSN, PeerDSN: peerDSN, PeerDown: peerDown,
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
	if mode, _ := d.shim.Mode(); mode != txshim.ModeDual {
		t.Fatalf("master of term 1 with its peer up: shim %s, want dual", mode)
	}
	return d, peer, pdb
}

// soloSite is dualSite2 gone solo in term 1, its peer database paused.
type soloSite struct {
	d      *database
	peer   *pgtest.Cluster
	pdb    *sql.DB // the peer database
	client *sql.DB // a client of the shim
	dsn    string  // the shim's
}

// soloSite2 is dualSite2 gone solo (its peer database paused for a commit), with row 10
// committed alone.
func soloSite2(t *testing.T, ctx context.Context) *soloSite {
	t.Helper()
	d, peer, pdb := dualSite2(t)
	client, dsn := serveShim(t, d)
	if err := peer.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Resume() })
	if _, err := client.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
		t.Fatalf("commit with the peer database away: %v", err)
	}
	if mode, term := d.shim.Mode(); mode != txshim.ModeSolo || term != 1 {
		t.Fatalf("after a commit with the peer database away: shim %s in term %d, want solo in term 1", mode, term)
	}
	// A commit made alone, for the catch-up to ship: the one above may have reached the peer
	// prepared, and the resolver commits it there.
	if _, err := client.ExecContext(ctx, `INSERT INTO acct VALUES (10, 10)`); err != nil {
		t.Fatalf("solo commit: %v", err)
	}
	return &soloSite{d: d, peer: peer, pdb: pdb, client: client, dsn: dsn}
}

// backWithRecord resumes s's peer database, makes record in it (another master's term record)
// and runs three rounds of s's catch-up.
func (s *soloSite) backWithRecord(t *testing.T, ctx context.Context, record string) {
	t.Helper()
	if err := s.peer.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pdb.ExecContext(ctx, record); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		s.d.catchUp(cctx)
		ccancel()
	}
}

// TestHandoverShipBarrier: a write committed plainly on the master whose reply did not wait for
// the peer (an autocommit statement the shim takes for a read but which writes — here made
// straight on the local database, as such a write reaches it) may still be unshipped when a
// handover's drain ends: no commit is in flight. The shipper then turned backup, "released"
// said peer_synced = true, and the successor took the next term without the row. The drain now
// ends with a ship barrier: with the peer up, the handover returns once the row is on the peer;
// with a peer that does not take it (its database frozen: the shim stays dual, as nothing
// committing noticed), peer_synced = false is recorded before the release.
func TestHandoverShipBarrier(t *testing.T) {
	t.Parallel()
	t.Run("shipped", func(t *testing.T) {
		d, _, pdb := dualSite2(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
			t.Fatal(err)
		}
		d.stepDown(ctx, 1)
		var n int
		if err := pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 1`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("the handover ended with the row committed before it not on the peer (%d rows there), and peer_synced = true", n)
		}
		if downs := d.peerDowns(); downs != 0 {
			t.Errorf("peer_synced = false recorded %d times with the peer up", downs)
		}
		waitDrained(t, d) // setRole's own drain, before the database closes
	})
	t.Run("peer frozen", func(t *testing.T) {
		d, peer, _ := dualSite2(t)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := peer.Pause(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { peer.Resume() }) // before the shipper stops (cleanups run last-in first-out)
		if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		d.stepDown(ctx, 1)
		took := time.Since(start)
		t.Logf("handover with the peer frozen took %v", took.Round(time.Millisecond))
		if d.peerDowns() == 0 || !d.shim.WentSolo(1) {
			t.Errorf("the handover ended with a row the peer lacks and peer_synced = false never recorded (downs %d, went solo %v): \"released\" says the peer has everything",
				d.peerDowns(), d.shim.WentSolo(1))
		}
		if limit := txshim.CommitWaitMax(d.cfg.CommitTimeout) + drainMargin; took > limit {
			t.Errorf("the handover took %v, more than the drain's bound %v", took, limit)
		}
		waitDrained(t, d)
	})
}

// TestHandoverBarrierRoutedFirst: the node delivers the backup State of a release before it
// runs BeforeRelease, so route may demote the shim first and start the drain that turns the
// shipper backup; stepDown's barrier then found the shipper backup, not in step, and recorded
// peer_synced = false with the peer up (a switchover refused for nothing). The drain the
// release's State starts carries the barrier, and stepDown waits for it.
func TestHandoverBarrierRoutedFirst(t *testing.T) {
	t.Parallel()
	d, _, pdb := dualSite2(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	d.setRole(gossip.State{Role: gossip.RoleBackup, Term: 1, Master: "site2", Releasing: 1}) // route, from followRoles
	time.Sleep(300 * time.Millisecond)
	d.stepDown(ctx, 1)
	var n int
	if err := pdb.QueryRowContext(ctx, `SELECT count(*) FROM acct WHERE id = 1`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || d.peerDowns() != 0 {
		t.Errorf("release routed before BeforeRelease: %d rows on the peer, peer_synced = false recorded %d times; want 1, 0", n, d.peerDowns())
	}
	waitDrained(t, d)
}

// TestNoBarrierUnlessReleased: a master fenced (cut off), or demoted by a newer term it finds
// (a release to a member already master of a newer term, after its process was paused), drains
// without the handover's barrier: the other site took or takes the role without hearing
// it, and a barrier failing on the peer link that is down counted the term as one committed
// alone in — a split brain reported and failback stopped though nothing committed alone.
func TestNoBarrierUnlessReleased(t *testing.T) {
	t.Parallel()
	for name, st := range map[string]gossip.State{
		"fenced":     {Self: "site2", Role: gossip.RoleFenced, Term: 1, Master: "site2"},
		"newer term": {Self: "site2", Role: gossip.RoleBackup, Term: 2, Master: "site1"},
		"released to": {Self: "site2", Role: gossip.RoleBackup, Term: 1, Master: "site1", Releasing: 1,
			Members: []gossip.MemberStatus{{Site: "site1", Alive: true, Role: gossip.MemberRole(gossip.RoleMaster), Term: 2}}},
	} {
		t.Run(name, func(t *testing.T) {
			d, peer, _ := dualSite2(t)
			if err := peer.Pause(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { peer.Resume() })
			// A plain commit the frozen peer cannot take: a barrier would fail on it.
			if _, err := d.local.Exec(`INSERT INTO acct VALUES (1, 1)`); err != nil {
				t.Fatal(err)
			}
			d.setRole(st)
			waitDrained(t, d)
			if d.peerDowns() != 0 || d.shim.WentSolo(1) {
				t.Errorf("%s of term %d: peer_synced = false recorded %d times, term 1 counted as committed alone in: %v; want neither",
					st.Role, st.Term, d.peerDowns(), d.shim.WentSolo(1))
			}
		})
	}
}

// TestReleaseBarrierNewerTermOnPeer is TestBankWorkload's "site1 frozen whole" as the release
// of a master that learnt of a newer term from a record (the witness's, say) before it saw the
// other site master of it (newerMaster: no), so its drain runs the barrier: its Shipper lost the
// peer, whose database holds the newer term. With every commit of its term a dual one, the peer
// lacks nothing, and the barrier failing on the Shipper out of step recorded peer_synced =
// false and counted the term as committed alone in — a split brain reported, failback stopped
// for good. A plain commit made before, which that peer database refused for its stale term,
// is still what the peer lacks: recorded so.
func TestReleaseBarrierNewerTermOnPeer(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		name := "nothing lacking"
		if plain {
			name = "plain commit unshipped"
		}
		t.Run(name, func(t *testing.T) {
			d, _, pdb := dualSite2(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := txshim.WriteTermRecord(ctx, pdb, 2, "site1", true); err != nil {
				t.Fatal(err)
			}
			if plain {
				if _, err := d.local.ExecContext(ctx, `INSERT INTO acct VALUES (1, 1)`); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(20 * time.Second)
				for d.ship.PeerSynced() { // the ship refused for its stale term takes it down
					if time.Now().After(deadline) {
						t.Fatal("the Shipper stays in step though the peer refuses its term")
					}
					time.Sleep(10 * time.Millisecond)
				}
			} else {
				d.ship.Down("test: the peer connection lost while the site was frozen", nil)
			}
			d.stepDown(ctx, 1)
			waitDrained(t, d)
			lacks := d.peerDowns() != 0 || d.shim.WentSolo(1)
			if lacks != plain {
				t.Errorf("release of term 1 with the Shipper out of step: peer_synced = false recorded %d times, term 1 counted as committed alone in: %v; want both %v",
					d.peerDowns(), d.shim.WentSolo(1), plain)
			}
		})
	}
}
