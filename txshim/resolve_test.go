package txshim

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestRecoveryRule checks the table of DESIGN §5.4 as pure logic, every combination.
func TestRecoveryRule(t *testing.T) {
	t.Parallel()
	own := func(commit bool) resolveStep { return resolveStep{own: true, commit: commit} }
	other := func(commit bool) resolveStep { return resolveStep{own: false, commit: commit} }
	states := []sideState{sideUnreachable, sidePrepared, sideCommitted, sideNeither, sideUnknown}
	for _, o := range states {
		for _, x := range states {
			steps, doubt := recoveryRule(o, x)
			var want []resolveStep
			wantDoubt := false
			switch {
			case o == sidePrepared && x == sideCommitted:
				want = []resolveStep{own(true)}
			case o == sidePrepared && x == sidePrepared:
				want = []resolveStep{own(true), other(true)}
			case o == sidePrepared && x == sideNeither:
				want = []resolveStep{own(false)}
			case o == sidePrepared: // other side unreachable or unknown
				wantDoubt = true
			case x == sidePrepared && (o == sideCommitted || o == sideUnreachable):
				want = []resolveStep{other(true)}
			case x == sidePrepared && o == sideNeither:
				want = []resolveStep{other(false)}
			case x == sidePrepared: // own site unknown
				wantDoubt = true
			}
			if !slices.Equal(steps, want) || (doubt != "") != wantDoubt {
				t.Errorf("own %v, other %v: steps %v doubt %q; want %v doubt %v", o, x, steps, doubt, want, wantDoubt)
			}
		}
	}
}

// resolveEnv is two sites' databases set up for Tandem: site1's (local) and site2's (peer),
// each with table acct, the tandem schema and term 1 with site1 as master.
type resolveEnv struct {
	local, peer *pgtest.Cluster
	logger      *slog.Logger
	crashAt     atomic.Pointer[string] // the failpoint step that ends the session of dual's shim; nil: none
	stopShipper atomic.Pointer[func()] // stops the current subtest's Shipper
}

func newResolveEnv(t *testing.T) *resolveEnv {
	e := &resolveEnv{logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	e.local, e.peer = testCluster(t), testCluster(t)
	ctx := capCtx(t, 30*time.Second)
	for _, c := range e.clusters() {
		c.Exec(t, "CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)")
	}
	if err := Install(ctx, "site1", e.localDSN(), e.peerDSN(), e.logger); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.clusters() {
		if err := WriteTermRecord(ctx, c.Open(t, c.Database()), 1, "site1", true); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// failpoint is the failpoint of the shims dual starts; each subtest picks its step through
// crashAt. The crash takes the whole process down: the Shipper stops at the crash step, or
// right after the peer prepared when the crash comes later, before the local COMMIT PREPARED
// that it would act on.
func (e *resolveEnv) failpoint(step string) error {
	p := e.crashAt.Load()
	if p == nil {
		return nil
	}
	if step == *p || step == "after-peer-prepare" {
		if stop := e.stopShipper.Load(); stop != nil {
			(*stop)()
		}
	}
	if step == *p {
		return errors.New("injected crash")
	}
	return nil
}

func (e *resolveEnv) clusters() []*pgtest.Cluster { return []*pgtest.Cluster{e.local, e.peer} }
func (e *resolveEnv) localDSN() string            { return e.local.DSN(e.local.Database()) }
func (e *resolveEnv) peerDSN() string             { return e.peer.DSN(e.peer.Database()) }

// resolver is site1's resolver (local database site1's, peer site2's).
func (e *resolveEnv) resolver(inFlight func(string) bool) *Resolver {
	return NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger, InFlight: inFlight})
}

// dual starts a Shipper and a Shim in dual mode for one subtest, both stopped when it ends
// (the Shipper earlier by a crash). A subtest starts from identical databases with
// nothing prepared and site1's slot moved to the end of the WAL: a Shipper does not learn of
// commits the resolver makes, so a new one would otherwise replay them from the slot.
func (e *resolveEnv) dual(t *testing.T) *testShim {
	t.Helper()
	ctx := capCtx(t, 20*time.Second)
	for _, c := range e.clusters() {
		db := c.Open(t, c.Database())
		for _, g := range preparedGIDs(t, c) {
			t.Logf("rolling back %s left over by an earlier subtest", g)
			if _, err := db.ExecContext(ctx, "ROLLBACK PREPARED "+sqlLiteral(g)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if diffs, err := Verify(ctx, e.localDSN(), e.peerDSN()); err != nil || len(diffs) > 0 {
		t.Fatalf("databases differ before the subtest: %v %v", diffs, err)
	}
	sh, stopShipper := e.startShipper(t, ctx)
	e.stopShipper.Store(&stopShipper)
	t.Cleanup(stopShipper)
	t.Cleanup(func() { e.crashAt.Store(nil) })
	s := startShim(t, e.local, Options{Peer: sh, Logger: e.logger}, ModeDual, 1)
	s.hooks.failpoint.set(e.failpoint)
	return s
}

// startShipper moves site1's slot to the end of the WAL (a Shipper does not learn of commits
// the resolver makes, so a new one would otherwise replay them from the slot) and runs a
// Shipper of term 1; stop ends it (once), reporting its error.
func (e *resolveEnv) startShipper(t *testing.T, ctx context.Context) (sh *Shipper, stop func()) {
	t.Helper()
	local := e.local.Open(t, e.local.Database())
	for {
		_, err := local.ExecContext(ctx, "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", SlotName("site1"))
		if err == nil {
			break
		}
		if ctx.Err() != nil { // the last Shipper's walsender still holds the slot
			t.Fatalf("advance slot: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sh = NewShipper(ShipperConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger})
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
	return sh, stop
}

// crash runs INSERT INTO acct (id, id) through the shim with the session ending at step of
// the dual commit and returns the transaction's gid, found prepared on the databases want
// names ("local", "peer").
func (e *resolveEnv) crash(t *testing.T, s *testShim, step string, id int, want ...string) string {
	t.Helper()
	e.crashAt.Store(&step)
	conn := s.connect(t)
	_, err := conn.Exec(capCtx(t, 10*time.Second), "INSERT INTO acct VALUES ($1, $1)", id)
	if err == nil {
		t.Fatalf("commit succeeded through a crash at %s", step)
	}
	e.crashAt.Store(nil)
	var gid string
	var where []string
	for i, c := range e.clusters() {
		gids := preparedGIDs(t, c)
		if len(gids) > 1 || (gid != "" && len(gids) == 1 && gids[0] != gid) {
			t.Fatalf("%s database holds prepared %v (gid so far %q)", sideName(i), gids, gid)
		}
		if len(gids) == 1 {
			gid = gids[0]
			where = append(where, sideName(i))
		}
	}
	if !slices.Equal(where, want) || !gidRE.MatchString(gid) {
		t.Fatalf("after a crash at %s: gid %q prepared on %v, want on %v", step, gid, where, want)
	}
	return gid
}

func preparedGIDs(t *testing.T, c *pgtest.Cluster) []string {
	t.Helper()
	rows, err := c.Open(t, c.Database()).Query(`SELECT gid FROM pg_prepared_xacts WHERE starts_with(gid, 'tandem_') ORDER BY gid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var gids []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		gids = append(gids, g)
	}
	return gids
}

func hasRow(t *testing.T, c *pgtest.Cluster, id int) bool {
	t.Helper()
	var n int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM acct WHERE id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// settled asserts the end state of every row of the recovery table: nothing of Tandem's
// prepared on either database, both databases identical, row id on both (committed) or on
// neither.
func (e *resolveEnv) settled(t *testing.T, id int, committed bool) {
	t.Helper()
	for i, c := range e.clusters() {
		if g := preparedGIDs(t, c); len(g) > 0 {
			t.Errorf("%s database still holds prepared %v", sideName(i), g)
		}
		if hasRow(t, c, id) != committed {
			t.Errorf("%s database: row %d present = %v, want %v", sideName(i), id, !committed, committed)
		}
	}
	diffs, err := Verify(capCtx(t, 20*time.Second), e.localDSN(), e.peerDSN())
	if err != nil || len(diffs) > 0 {
		t.Errorf("verify: %v %v", diffs, err)
	}
}

// resolve runs one pass and checks its report.
func resolve(t *testing.T, r *Resolver, committed, rolledBack []string, inDoubt ...InDoubt) Report {
	t.Helper()
	rep, err := r.ResolveOnce(capCtx(t, 30*time.Second))
	if err != nil {
		t.Fatalf("ResolveOnce: %v", err)
	}
	var doubt []InDoubt
	for _, d := range rep.InDoubt {
		if d.Reason == "" {
			t.Errorf("in-doubt %s without a reason", d.GID)
		}
		doubt = append(doubt, InDoubt{GID: d.GID, Side: d.Side})
	}
	if !slices.Equal(rep.Committed, committed) || !slices.Equal(rep.RolledBack, rolledBack) || !slices.Equal(doubt, inDoubt) {
		t.Fatalf("report %+v; want committed %v, rolled back %v, in doubt %v", rep, committed, rolledBack, inDoubt)
	}
	return rep
}

// kill crashes c; the returned restart starts it again, and so does the end of the test
// when it failed before, so that later subtests find it running.
func kill(t *testing.T, c *pgtest.Cluster) (restart func()) {
	t.Helper()
	c.Kill()
	up := false
	restart = func() {
		t.Helper()
		if up {
			return
		}
		up = true
		if err := c.Restart(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(restart)
	return restart
}

// TestResolver drives real transactions through the shim in dual mode with the real Shipper,
// stops each at the step of the dual commit that leaves one row of DESIGN §5.4's table, and
// checks that the resolver finishes it (and that a second pass finds nothing to do).
func TestResolver(t *testing.T) {
	t.Parallel()
	e := newResolveEnv(t)
	r := e.resolver(nil)

	t.Run("prepared locally only: roll back", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-local-prepare", 1, "local")
		resolve(t, r, nil, []string{g})
		resolve(t, r, nil, nil)
		e.settled(t, 1, false)
	})

	t.Run("prepared on both: commit both", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 2, "local", "peer")
		// Two passes at once: one commits, the other waits for it and finds nothing.
		var reps [2]Report
		var errs [2]error
		var wg sync.WaitGroup
		for i := range reps {
			wg.Go(func() { reps[i], errs[i] = r.ResolveOnce(capCtx(t, 30*time.Second)) })
		}
		wg.Wait()
		all := append(append([]string{}, reps[0].Committed...), reps[1].Committed...)
		if errs[0] != nil || errs[1] != nil || !slices.Equal(all, []string{g}) ||
			len(reps[0].RolledBack)+len(reps[1].RolledBack)+len(reps[0].InDoubt)+len(reps[1].InDoubt) > 0 {
			t.Fatalf("concurrent passes: %+v %+v, errors %v %v", reps[0], reps[1], errs[0], errs[1])
		}
		e.settled(t, 2, true)
	})

	t.Run("committed locally, prepared on peer: commit on peer", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-local-commit", 3, "peer")
		if !hasRow(t, e.local, 3) || hasRow(t, e.peer, 3) {
			t.Fatal("precondition: committed locally only")
		}
		resolve(t, r, []string{g}, nil)
		resolve(t, r, nil, nil)
		e.settled(t, 3, true)
	})

	t.Run("prepared locally, committed on peer: commit locally", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 4, "local", "peer")
		// A resolver that stopped halfway through "commit both".
		e.peer.Exec(t, "COMMIT PREPARED "+sqlLiteral(g))
		resolve(t, r, []string{g}, nil)
		resolve(t, r, nil, nil)
		e.settled(t, 4, true)
	})

	t.Run("prepared on peer, rolled back locally: roll back on peer", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 5, "local", "peer")
		// The coordinator rolled back locally and died before the peer's ROLLBACK PREPARED.
		e.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(g))
		resolve(t, r, nil, []string{g})
		resolve(t, r, nil, nil)
		e.settled(t, 5, false)
	})

	t.Run("prepared on peer, own site unreachable: commit", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 6, "local", "peer")
		restartLocal := kill(t, e.local)
		// site2 resolves after site1's crash: its local database holds the applied copy.
		r2 := NewResolver(ResolverConfig{Site: "site2", LocalDSN: e.peerDSN(), PeerDSN: e.localDSN(), Logger: e.logger})
		resolve(t, r2, []string{g}, nil)
		if !hasRow(t, e.peer, 6) || len(preparedGIDs(t, e.peer)) > 0 {
			t.Fatal("not committed on site2's database")
		}
		restartLocal()
		// Back up, site1's database still holds it prepared; site2 has committed: commit.
		resolve(t, r2, []string{g}, nil)
		resolve(t, r2, nil, nil)
		e.settled(t, 6, true)
	})

	t.Run("prepared locally, peer unreachable: in doubt until it is back", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 7, "local", "peer")
		restartPeer := kill(t, e.peer)
		if rep := resolve(t, r, nil, nil, InDoubt{GID: g, Side: "local"}); !rep.PeerUnreachable {
			t.Error("the report does not say the peer was unreachable")
		}
		resolve(t, r, nil, nil, InDoubt{GID: g, Side: "local"})
		if !slices.Equal(preparedGIDs(t, e.local), []string{g}) {
			t.Fatal("the in-doubt transaction was touched")
		}
		restartPeer()
		if rep := resolve(t, r, []string{g}, nil); rep.PeerUnreachable {
			t.Error("the report says the peer was unreachable after its restart")
		}
		e.settled(t, 7, true)
	})

	t.Run("in-flight gids are skipped", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-local-prepare", 8, "local")
		var busy atomic.Bool
		busy.Store(true)
		asked := 0
		rf := e.resolver(func(gid string) bool {
			asked++
			return gid == g && busy.Load()
		})
		resolve(t, rf, nil, nil)
		if asked == 0 || !slices.Equal(preparedGIDs(t, e.local), []string{g}) {
			t.Fatalf("in-flight gid touched, or InFlight not asked (%d)", asked)
		}
		if err := rf.Decide(capCtx(t, 10*time.Second), g, false); err == nil {
			t.Fatal("Decide accepted an in-flight gid")
		}
		busy.Store(false)
		resolve(t, rf, nil, []string{g})
		e.settled(t, 8, false)
	})

	t.Run("decide commit", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 9, "local", "peer")
		restartPeer := kill(t, e.peer)
		resolve(t, r, nil, nil, InDoubt{GID: g, Side: "local"})
		ctx := capCtx(t, 20*time.Second)
		// The master's record says the peer has every commit (as with peer_down = "block"):
		// committed here alone, a takeover by site2 would lose it.
		if err := r.Decide(ctx, g, true); err == nil || !strings.Contains(err.Error(), "peer_synced = true") {
			t.Fatalf("Decide committed %s alone (site2's database unreachable) while the term record says peer_synced = true: %v", g, err)
		}
		if hasRow(t, e.local, 9) {
			t.Fatal("the refused Decide committed locally")
		}
		// Recorded false, as a master whose peer failed does with peer_down = "continue".
		localDB := e.local.Open(t, e.local.Database())
		if err := WriteTermRecord(ctx, localDB, 1, "site1", false); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := WriteTermRecord(context.Background(), localDB, 1, "site1", true); err != nil {
				t.Error(err)
			}
		}()
		if err := r.Decide(ctx, g, true); err != nil {
			t.Fatal(err)
		}
		if !hasRow(t, e.local, 9) || len(preparedGIDs(t, e.local)) > 0 {
			t.Fatal("Decide did not commit locally")
		}
		if err := r.Decide(ctx, g, false); err == nil {
			t.Fatal("Decide rolled back a gid that is committed")
		}
		resolve(t, r, nil, nil)
		restartPeer()
		// Committed on its own site, still prepared on the peer: the pass commits it there.
		resolve(t, r, []string{g}, nil)
		e.settled(t, 9, true)
	})

	t.Run("decide roll back", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-local-prepare", 10, "local")
		restartPeer := kill(t, e.peer)
		resolve(t, r, nil, nil, InDoubt{GID: g, Side: "local"})
		ctx := capCtx(t, 20*time.Second)
		for _, bad := range []string{"tandem_site1_1_999999", "tandem_nonsense", "other_gid"} {
			if err := r.Decide(ctx, bad, false); err == nil {
				t.Errorf("Decide accepted %s, which is prepared nowhere", bad)
			}
		}
		// The unreachable peer may hold a copy prepared, which a pass without site1's database
		// would commit: no roll-back until it is back.
		if err := r.Decide(ctx, g, false); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("Decide rolled back with the peer unreachable: %v", err)
		}
		restartPeer()
		if err := r.Decide(ctx, g, false); err != nil {
			t.Fatal(err)
		}
		if err := r.Decide(ctx, g, true); err == nil || !strings.Contains(err.Error(), "rolled it back") {
			t.Fatalf("Decide committed a rolled-back gid: %v", err)
		}
		resolve(t, r, nil, nil)
		e.settled(t, 10, false)
	})

	// An operator's roll-back must not contradict what a later pass decides: a copy prepared on
	// the applied side is committed whenever the gid's own site is out of reach (DESIGN §5.4).
	t.Run("decide roll back refused while the peer is unreachable", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 12, "local", "peer")
		restartPeer := kill(t, e.peer)
		resolve(t, r, nil, nil, InDoubt{GID: g, Side: "local"})
		if err := r.Decide(capCtx(t, 20*time.Second), g, false); err == nil {
			t.Errorf("Decide rolled %s back on site1's database while site2's, unreachable, holds it prepared", g)
		}
		restartPeer()
		// Now site1's database goes away and site2 (promoting) resolves what it holds.
		restartLocal := kill(t, e.local)
		r2 := NewResolver(ResolverConfig{Site: "site2", LocalDSN: e.peerDSN(), PeerDSN: e.localDSN(), Logger: e.logger})
		if _, err := r2.ResolveOnce(capCtx(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		restartLocal()
		if _, err := r.ResolveOnce(capCtx(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		e.settled(t, 12, true)
	})

	t.Run("decide roll back refused while the own site is unreachable", func(t *testing.T) {
		s := e.dual(t)
		// Committed on site1's database; the peer's COMMIT PREPARED never came.
		g := e.crash(t, s, "after-local-commit", 13, "peer")
		restartLocal := kill(t, e.local)
		r2 := NewResolver(ResolverConfig{Site: "site2", LocalDSN: e.peerDSN(), PeerDSN: e.localDSN(), Logger: e.logger})
		if err := r2.Decide(capCtx(t, 20*time.Second), g, false); err == nil {
			t.Errorf("Decide rolled %s back on site2's database while site1's, unreachable, committed it", g)
		}
		restartLocal()
		if _, err := r2.ResolveOnce(capCtx(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		e.settled(t, 13, true)
	})

	t.Run("run", func(t *testing.T) {
		s := e.dual(t)
		g := e.crash(t, s, "after-peer-prepare", 11, "local", "peer")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx, 50*time.Millisecond) }()
		defer func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for len(preparedGIDs(t, e.local))+len(preparedGIDs(t, e.peer)) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("Run left %s prepared", g)
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.settled(t, 11, true)
	})
}

// TestResolverBothUnreachable checks a pass without any database fails clearly.
func TestResolverBothUnreachable(t *testing.T) {
	t.Parallel()
	dsn := "postgres://postgres@127.0.0.1:1/app?sslmode=disable"
	r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: dsn, PeerDSN: dsn})
	_, err := r.ResolveOnce(capCtx(t, 10*time.Second))
	if err == nil || !strings.Contains(err.Error(), "neither database is reachable") {
		t.Fatalf("err = %v", err)
	}
	if err := r.Decide(capCtx(t, 10*time.Second), "tandem_site1_1_5", true); err == nil {
		t.Fatal("Decide succeeded without databases")
	}
}

// TestResolverOutsideLeavesInFlight: `tandem resolve` runs a pass in a process of its own,
// which cannot ask the running shim which gids it is still committing (InFlight). Such a pass
// while a dual commit waits between its local PREPARE and the peer's must leave it alone, and
// the commit goes through.
func TestResolverOutsideLeavesInFlight(t *testing.T) {
	t.Parallel()
	p, sh := shippingAcct(t)
	logger := quietLogger()
	shim := startShim(t, p.local, Options{Peer: sh, Site: "a", Logger: logger}, ModeDual, 1)
	paused, resume := pauseAtLocalPrepare(shim.Shim)()
	ctx := capCtx(t, 60*time.Second)
	done := make(chan error, 1)
	go func() {
		_, err := shim.connect(t).Exec(ctx, "INSERT INTO acct VALUES (1, 100)")
		done <- err
	}()
	select {
	case <-paused:
	case <-ctx.Done():
		t.Fatal("the commit never reached its local PREPARE")
	}
	// What cmd/tandem's resolve command builds (Settle: commit_timeout and a margin).
	const settle = 2 * time.Second
	outside := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: logger,
		Settle: settle})
	rep, err := outside.ResolveOnce(ctx)
	close(resume)
	if err != nil || len(rep.Committed)+len(rep.RolledBack) > 0 {
		t.Errorf("outside pass during a dual commit: %+v, %v; want it left alone", rep, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the dual commit the outside pass met: %v", err)
	}
	waitForLong(t, "nothing prepared", 20*time.Second, func() bool {
		return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`)+queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
	})
	requireSame(t, p)

	// A gid left prepared by a crash is settled by such a pass once it is older than Settle.
	tx, err := p.ldb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var xid string
	if err := tx.QueryRowContext(ctx, `INSERT INTO acct VALUES (2, 1) RETURNING pg_current_xact_id()::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	gid := "tandem_a_1_" + xid
	if _, err := tx.ExecContext(ctx, "PREPARE TRANSACTION "+sqlLiteral(gid)); err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback() // the PREPARE ended it
	if rep, err := outside.ResolveOnce(ctx); err != nil || len(rep.RolledBack) > 0 {
		t.Fatalf("pass right after the PREPARE: %+v, %v; want it left alone", rep, err)
	}
	time.Sleep(settle)
	if rep, err := outside.ResolveOnce(ctx); err != nil || !slices.Equal(rep.RolledBack, []string{gid}) {
		t.Fatalf("pass after Settle: %+v, %v; want %s rolled back", rep, err, gid)
	}
}

// TestResolverEndsLateApply: a Prepare that gave up leaves its apply session on the peer
// running when the cancel that pgconn sends on its way out does not arrive (the peer was out
// of reach for new connections): blocked on a row lock, that session PREPAREs the gid once
// the lock is free. Before the resolver rolls the own copy back on the word of the peer
// (prepared nowhere there), it ends that session, so the peer never prepares the gid
// afterwards — which recovery would commit whenever the own site is out of reach.
func TestResolverEndsLateApply(t *testing.T) {
	t.Parallel()
	resolverEndsApply(t, lockedLateApply())
}

// lockedLateApply is the late apply of TestResolverEndsLateApply: named for lateGID, waiting for
// the row lock on kv's row 1, and then preparing lateGID.
func lockedLateApply() lateApply {
	return lateApply{
		startName: applyAppName + " " + lateGID,
		script:    `BEGIN; UPDATE kv SET v = 'late' WHERE k = 1; PREPARE TRANSACTION ` + sqlLiteral(lateGID),
		what:      "the orphaned apply to wait for the row lock",
		ready:     `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
		readyName: applyAppName + " " + lateGID,
	}
}

// lateGID is the gid resolverEndsApply prepares locally.
var lateGID = gidFor("a", 1, 1)

// lateApply is an apply session on the peer that outlives its Prepare, for resolverEndsApply:
// the name it starts with, what it runs (ending with PREPARE TRANSACTION lateGID, once a row lock
// is free), and when it is where the test wants it (ready counts the sessions named readyName
// in that state).
type lateApply struct {
	startName, script string
	what, ready       string
	readyName         string
	// site and gid: the resolver's site and the gid, when not "a" and lateGID.
	site, gid string
	// settle: the resolver's Settle (a pass of tandem resolve), waited out before its pass.
	settle time.Duration
}

// resolverEndsApply: with la running on the peer, blocked by a row lock on the way to its
// PREPARE, a resolver pass rolls back the local copy of lateGID (prepared nowhere on the peer) and
// ends la first, so that the peer never prepares lateGID once the lock is free.
func resolverEndsApply(t *testing.T, la lateApply) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{`BEGIN`, `UPDATE kv SET v = 'blocker' WHERE k = 1`} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	gid, site := cmp.Or(la.gid, lateGID), cmp.Or(la.site, "a")
	prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'late' WHERE k = 1`)
	cfg, err := pgconn.ParseConfig(p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = la.startName
	orphan, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	late := make(chan error, 1)
	octx, stop := context.WithCancel(ctx)
	go func() {
		_, err := orphan.Exec(octx, la.script).ReadAll()
		late <- err
	}()
	// The connection is closed once its Exec is done (cancelled, when the test failed first).
	defer func() {
		stop()
		<-late
		orphan.Close(context.Background())
	}()
	waitFor(t, la.what, func() bool { return queryOne[int](t, p.pdb, la.ready, la.readyName) == 1 })

	if la.settle > 0 {
		time.Sleep(la.settle + 500*time.Millisecond)
	}
	rep, err := NewResolver(ResolverConfig{Site: site, LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger(),
		Settle: la.settle}).ResolveOnce(ctx)
	if err != nil || !slices.Equal(rep.RolledBack, []string{gid}) {
		t.Fatalf("resolver pass: %+v, %v; want %s rolled back", rep, err, gid)
	}
	if _, err := blocker.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-late:
		late <- err // for the deferred close
	case <-time.After(10 * time.Second):
		t.Fatal("the late apply neither ended nor finished")
	}
	if preparedOn(t, p.pdb, gid) {
		p.pdb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
		t.Fatalf("%s was prepared on the peer after the resolver rolled the local copy back", gid)
	}
	if v := queryOne[string](t, p.pdb, `SELECT v FROM kv WHERE k = 1`); v != "one" {
		t.Errorf("peer row = %q, want one", v)
	}
}
