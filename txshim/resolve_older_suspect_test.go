package txshim

import (
	"context"
	"testing"
	"time"
)

// TestResolverCommitsOlderTermAloneAfterRestartAsBackup: a dual commit of term 1 ends in doubt,
// prepared on site1's database only (the peer database frozen). site1's sidecar then starts
// again as backup while its database's term record names another site (an adopted record:
// setBypass takes boundary 0), so its Shipper takes the gid's PREPARE, read again from the slot,
// for a suspect — possibly a bypass — and keeps none of its changes. site1 becomes master of
// term 3 alone (the peer database still frozen). Committing the gid alone then leaves a commit
// that catch-up never ships: settle lets a suspect the peer lacks go as a bypass, and the
// databases part. Left in doubt (DESIGN §5.4), the gid is rolled back on site1's database by
// the first pass that reaches both, and the databases stay alike.
func TestResolverCommitsOlderTermAloneAfterRestartAsBackup(t *testing.T) {
	t.Parallel()
	e := newResolveEnv(t)
	ctx := capCtx(t, 3*time.Minute)
	local := e.local.Open(t, e.local.Database())
	for {
		_, err := local.ExecContext(ctx, "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", SlotName("site1"))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("advance slot: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	runShipper := func(sh *Shipper) (stop func()) {
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(sctx) }()
		stopped := false
		stop = func() {
			if !stopped {
				stopped = true
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Shipper.Run: %v", err)
				}
			}
		}
		t.Cleanup(stop)
		return stop
	}
	sh := NewShipper(ShipperConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger})
	sh.SetTerm(1)
	stop1 := runShipper(sh)
	s := startShim(t, e.local, Options{Peer: sh, Logger: e.logger, OnPeerDown: func() bool { return false }}, ModeDual, 1)
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)"); err != nil {
		t.Fatalf("a dual commit with both databases up: %v", err)
	}
	g, resume := e.frozenInDoubt(t, ctx, conn)
	s.SetMode(ModeReadOnly, 1)
	stop1()

	// The sidecar starts again, as backup; its database's term record names site2 (term 2,
	// adopted): setBypass gives boundary 0.
	if err := WriteTermRecord(ctx, local, 2, "site2", true); err != nil {
		t.Fatal(err)
	}
	sh2 := NewShipper(ShipperConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger})
	sh2.SetTerm(2)
	sh2.SetBackup(true)
	runShipper(sh2)
	sh2.SetBypassFrom(0)
	for {
		sh2.mu.Lock()
		en := sh2.byGID[g]
		suspect := en != nil && en.suspect
		sh2.mu.Unlock()
		if suspect {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the restarted Shipper never took %s from the slot", g)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// site1 master of term 3, alone (promote: record, shipper, then solo mode).
	if err := WriteTermRecord(ctx, local, 3, "site1", false); err != nil {
		t.Fatal(err)
	}
	sh2.SetTerm(3)
	sh2.SetBackup(false)
	s2 := startShim(t, e.local, Options{Peer: sh2, Logger: e.logger}, ModeSolo, 3)
	r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger,
		InFlight: s2.InFlight, CommitAlone: s2.CommitAlone, StartupTimeout: frozenStartup})
	rep, err := r.ResolveOnce(ctx)
	t.Logf("pass with the peer frozen: %+v %v", rep, err)

	// The peer database thaws: passes and catch-up until the peer is in step.
	resume()
	for {
		if _, err := r.ResolveOnce(ctx); err != nil {
			t.Logf("resolver pass: %v", err)
		}
		err := sh2.CatchUp(ctx, nil)
		if err == nil && sh2.PeerSynced() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("catch-up did not finish: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, c := range e.clusters() {
		if p := preparedGIDs(t, c); len(p) > 0 {
			t.Errorf("%s database still holds prepared %v", sideName(i), p)
		}
	}
	if hasRow(t, e.local, 2) != hasRow(t, e.peer, 2) {
		t.Errorf("row 2 (gid %s): on site1's database %v, on site2's %v; shipper %+v", g, hasRow(t, e.local, 2), hasRow(t, e.peer, 2), sh2.Stats())
	}
	diffs, err := Verify(ctx, e.localDSN(), e.peerDSN())
	if err != nil || len(diffs) > 0 {
		t.Errorf("verify: %v %v", diffs, err)
	}
}
