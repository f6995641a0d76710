package txshim

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/tandem-ha/tandem/config"
)

// startShipperCfg is resolveEnv.startShipper with a configuration of the test's own (site,
// databases and logger filled in).
func (e *resolveEnv) startShipperCfg(t *testing.T, ctx context.Context, cfg ShipperConfig) (sh *Shipper, stop func()) {
	t.Helper()
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
	cfg.Site, cfg.LocalDSN, cfg.PeerDSN, cfg.Logger = "site1", e.localDSN(), e.peerDSN(), e.logger
	sh = NewShipper(cfg)
	sh.SetTerm(1)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(sctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Shipper.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return sh, stop
}

// gapEnv is the state droppedInDoubt leaves: two gids of term 1 in doubt, prepared on site1's
// database only with site2's database frozen, A held by the Shipper's journal, B dropped.
type gapEnv struct {
	sh     *Shipper
	s      *testShim
	soloOK *atomic.Bool
	ga, gb string
	resume func()
}

// droppedInDoubt starts a Shipper whose journal holds 32 KiB and a shim dual in term 1 that may
// go solo only once soloOK is set; freezes site2's database (thawed by resume, or when the test
// ends); and makes two dual commits end in doubt: A, about 88 KB of changes (rows 1000 to 1999),
// which the journal takes as its first and which fills it past its bound, then B (row 2), whose
// PREPARE the journal drops for that bound, to be read again from the slot at catch-up.
func (e *resolveEnv) droppedInDoubt(t *testing.T, ctx context.Context) *gapEnv {
	t.Helper()
	g := &gapEnv{soloOK: new(atomic.Bool)}
	g.sh, _ = e.startShipperCfg(t, ctx, ShipperConfig{MaxJournalBytes: 32 << 10, SpillBytes: -1})
	// Each of the two commits with the peer frozen waits out the commit timeout: 3 s, not the
	// default 5 s (the first commit, with both databases up, takes a fraction of it).
	g.s = startShimDSN(t, e.local, e.localDSN(), Options{Peer: g.sh, Logger: e.logger, OnPeerDown: func() bool { return g.soloOK.Load() }}, ModeDual, 1,
		func(c *config.TxShim) { c.CommitTimeout = 3 * time.Second })
	conn := g.s.connect(t)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)"); err != nil {
		t.Fatalf("a dual commit with both databases up: %v", err)
	}
	if err := e.peer.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	g.resume = func() {
		if !resumed {
			resumed = true
			if err := e.peer.Resume(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(g.resume)
	if _, err := conn.Exec(ctx, "INSERT INTO acct SELECT g, g FROM generate_series(1000, 1999) g"); err == nil || !strings.Contains(err.Error(), "in doubt") {
		t.Fatalf("the large dual commit with the peer frozen: %v, want in doubt", err)
	}
	gids := preparedGIDs(t, e.local)
	if len(gids) != 1 {
		t.Fatalf("prepared on site1's database: %v, want A only", gids)
	}
	g.ga = gids[0]
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (2, 2)"); err == nil || !strings.Contains(err.Error(), "in doubt") {
		t.Fatalf("the small dual commit with the peer frozen: %v, want in doubt", err)
	}
	for _, id := range preparedGIDs(t, e.local) {
		if id != g.ga {
			g.gb = id
		}
	}
	if g.gb == "" {
		t.Fatalf("B not prepared on site1's database: %v", preparedGIDs(t, e.local))
	}
	for g.sh.Stats().Dropped == 0 {
		if ctx.Err() != nil {
			t.Fatalf("the journal never dropped B's PREPARE: %+v", g.sh.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	g.sh.mu.Lock()
	_, heldA := g.sh.byGID[g.ga]
	_, heldB := g.sh.byGID[g.gb]
	g.sh.mu.Unlock()
	if !heldA || heldB {
		t.Fatalf("in the journal: A %v, B %v; want A only", heldA, heldB)
	}
	return g
}

// turnBackup makes site1 release term 1 as a handover's drain does: the shim read-only, the
// shipper backup with its bypass boundary at the local WAL's end.
func (e *resolveEnv) turnBackup(t *testing.T, ctx context.Context, g *gapEnv) {
	t.Helper()
	g.s.SetMode(ModeReadOnly, 1)
	g.sh.SetBackup(true)
	var lsn string
	if err := e.local.Open(t, e.local.Database()).QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	from, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		t.Fatal(err)
	}
	g.sh.SetBypassFrom(from)
}

// promote makes site1 master of term with the peer not in step (the promotion's order: term
// record, shipper down, then dual mode), going solo acknowledged.
func (e *resolveEnv) promote(t *testing.T, ctx context.Context, g *gapEnv, term uint64) {
	t.Helper()
	if err := WriteTermRecord(ctx, e.local.Open(t, e.local.Database()), term, "site1", false); err != nil {
		t.Fatal(err)
	}
	g.sh.SetTerm(term)
	g.sh.SetBackup(false)
	g.sh.Down("promotion", errors.New("the peer database is not in step"))
	g.s.SetMode(ModeDual, term)
	g.soloOK.Store(true)
}

// thaw resumes site2's database and runs resolver passes and catch-ups until the peer is in
// step; then nothing of Tandem's is prepared on either database and both are alike.
func (e *resolveEnv) thaw(t *testing.T, ctx context.Context, g *gapEnv, r *Resolver) {
	t.Helper()
	g.resume()
	for {
		if _, err := r.ResolveOnce(ctx); err != nil {
			t.Logf("resolver pass: %v", err)
		}
		err := g.sh.CatchUp(ctx, nil)
		if err == nil && g.sh.PeerSynced() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("catch-up did not finish: %v", err)
		}
		t.Logf("catch-up: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	for i, c := range e.clusters() {
		if p := preparedGIDs(t, c); len(p) > 0 {
			t.Errorf("%s database still holds prepared %v", sideName(i), p)
		}
	}
	diffs, err := Verify(ctx, e.localDSN(), e.peerDSN())
	if err != nil || len(diffs) > 0 {
		t.Errorf("verify: %v %v", diffs, err)
	}
}

// TestResolverCommitsOlderTermAlonePastJournalGap: with site2's database frozen, two dual
// commits of term 1 end in doubt, prepared on site1's database only, the second (B) after the
// first (A) filled the Shipper's journal past its memory bound: B's PREPARE is dropped, to be
// read again from the slot at catch-up (droppedInDoubt). Once site1 is master of term 2 with
// the peer still frozen, the resolver commits both alone — B's changes are in the slot, and
// the stream delivers them again before catch-up ships — so a write to B's row goes through
// instead of waiting for the peer database. When it thaws, catch-up ships each exactly once
// (one decision row), and the databases are alike.
func TestResolverCommitsOlderTermAlonePastJournalGap(t *testing.T) {
	t.Parallel()
	e := newResolveEnv(t)
	ctx := capCtx(t, 3*time.Minute)
	g := e.droppedInDoubt(t, ctx)
	e.turnBackup(t, ctx, g)
	e.promote(t, ctx, g, 2)

	r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger,
		InFlight: g.s.InFlight, CommitAlone: g.s.CommitAlone, StartupTimeout: frozenStartup})
	rep, err := r.ResolveOnce(ctx)
	if err != nil {
		t.Fatalf("ResolveOnce: %v", err)
	}
	if left := preparedGIDs(t, e.local); len(left) > 0 {
		t.Fatalf("with site1 master of term 2 and the peer frozen, still prepared on site1's database: %v (A %s, B %s); report %+v; shipper %+v",
			left, g.ga, g.gb, rep, g.sh.Stats())
	}
	if m, term := g.s.Mode(); m != ModeSolo || term != 2 {
		t.Fatalf("after committing alone: %v in term %d, want solo in term 2", m, term)
	}
	if !hasRow(t, e.local, 2) || !hasRow(t, e.local, 1500) {
		t.Fatal("A's or B's rows not committed on site1's database")
	}
	conn := g.s.connect(t)
	if _, err := conn.Exec(ctx, "UPDATE acct SET bal = bal + 10 WHERE id = 2"); err != nil {
		t.Fatalf("a solo write to B's row once it is committed: %v", err)
	}

	e.thaw(t, ctx, g, r)
	peer := e.peer.Open(t, e.peer.Database())
	var bal int
	if err := peer.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = 2").Scan(&bal); err != nil || bal != 12 {
		t.Errorf("row 2 on site2's database: bal %d, %v; want 12", bal, err)
	}
	for _, gid := range []string{g.ga, g.gb} {
		var decisions int
		if err := peer.QueryRowContext(ctx, "SELECT count(*) FROM tandem.decisions WHERE gid = $1", gid).Scan(&decisions); err != nil || decisions != 1 {
			t.Errorf("decision rows of %s on site2's database: %d, %v; want 1", gid, decisions, err)
		}
	}
	st := g.sh.Stats()
	if st.Restarts == 0 {
		t.Errorf("the stream was never read again past the gap: %+v", st)
	}
	t.Logf("shipper: %+v", st)
}

// TestResolverKeepsDroppedInDoubtAfterAbandon: as TestResolverCommitsOlderTermAlonePastJournalGap,
// but site1, backup, gives up what it committed alone (Abandon: another site was master of a
// newer term), which takes the slot past what the journal dropped — B's PREPARE among it — for
// good. Master of term 3 with the peer frozen, site1 must not commit B alone: no stream
// delivers it again, catch-up would never ship it, and the databases would part. It stays in
// doubt until a pass reaches both databases, and they end alike.
func TestResolverKeepsDroppedInDoubtAfterAbandon(t *testing.T) {
	t.Parallel()
	e := newResolveEnv(t)
	ctx := capCtx(t, 3*time.Minute)
	g := e.droppedInDoubt(t, ctx)
	e.turnBackup(t, ctx, g)
	if n := g.sh.Abandon(); n == 0 {
		t.Fatal("Abandon gave up nothing")
	}
	e.promote(t, ctx, g, 3)
	if g.sh.ShipsAlone(g.gb) {
		t.Errorf("ShipsAlone(%s) after Abandon took the slot past its PREPARE", g.gb)
	}

	r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger,
		InFlight: g.s.InFlight, CommitAlone: g.s.CommitAlone, StartupTimeout: frozenStartup})
	rep, err := r.ResolveOnce(ctx)
	if err != nil {
		t.Fatalf("ResolveOnce: %v", err)
	}
	if !slices.Contains(preparedGIDs(t, e.local), g.gb) {
		t.Fatalf("B (%s), dropped and given up, committed alone on site1's database: report %+v", g.gb, rep)
	}
	e.thaw(t, ctx, g, r)
	if hasRow(t, e.local, 2) != hasRow(t, e.peer, 2) {
		t.Errorf("row 2 (B): on site1's database %v, on site2's %v", hasRow(t, e.local, 2), hasRow(t, e.peer, 2))
	}
}
