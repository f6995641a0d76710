package txshim

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
)

// TestOlderAloneCandidate: only this site's gid, prepared on this site's database while the
// peer database is unreachable, is one the resolver may commit alone (the shim decides the
// rest). Another site's gid prepared here (its applied copy) is never in doubt with its own
// site's database unreachable: DESIGN §5.4 commits it; with its own site unknown it stays so.
func TestOlderAloneCandidate(t *testing.T) {
	t.Parallel()
	states := []sideState{sideUnreachable, sidePrepared, sideCommitted, sideNeither, sideUnknown}
	for _, site := range []string{"site1", "site2"} {
		for _, o := range states {
			for _, x := range states {
				want := site == "site1" && o == sidePrepared && x == sideUnreachable
				if got := olderAloneCandidate(site, "site1", o, x); got != want {
					t.Errorf("gid of %s, own %v, other %v: %v, want %v", site, o, x, got, want)
				}
			}
		}
	}
}

// TestResolverCommitsOlderTermAlone: a dual commit of term 1 whose peer database froze (SIGSTOP)
// ends in doubt, prepared on site1's database only (this site may not go solo then: OnPeerDown
// refuses, as when it has just stopped being master of term 1). While the peer does not
// answer, the resolver keeps it in doubt — with its row lock — when the shim is read-only or
// fenced (a backup), solo in the gid's own term, dual in term 2 while going solo is refused,
// or when the resolver is not the running tandem's (no CommitAlone). Once this site is master
// of term 2 — dual with the peer not in step, as a promotion to a peer database that is down
// leaves it, and no commit to go solo for it, all writes being held by the gid's row lock — the
// pass goes solo itself (announced: OnPeerDown) and commits the gid on site1's database, and a
// write to its row goes through. When the peer database thaws, catch-up brings the row there
// exactly once, and both databases are alike.
func TestResolverCommitsOlderTermAlone(t *testing.T) {
	t.Parallel()
	e := newResolveEnv(t)
	ctx := capCtx(t, 3*time.Minute)
	local := e.local.Open(t, e.local.Database())
	sh, stopShipper := e.startShipper(t, ctx)
	t.Cleanup(stopShipper)
	var soloOK atomic.Bool
	var downs atomic.Int32
	onPeerDown := func() bool { downs.Add(1); return soloOK.Load() }
	s := startShim(t, e.local, Options{Peer: sh, Logger: e.logger, OnPeerDown: onPeerDown}, ModeDual, 1)
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)"); err != nil {
		t.Fatalf("a dual commit with both databases up: %v", err)
	}

	// site2's database freezes; the next dual commit cannot reach it and ends in doubt.
	g, resume := e.frozenInDoubt(t, ctx, conn)
	doubt := InDoubt{GID: g, Side: "local"}
	downs.Store(0) // the commit asked to go solo, and was refused

	// This site releases term 1 (the shipper turns backup, as after a handover's drain).
	s.SetMode(ModeReadOnly, 1)
	sh.SetBackup(true)
	var lsn string
	if err := local.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	from, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		t.Fatal(err)
	}
	sh.SetBypassFrom(from)

	// The frozen peer accepts and hangs: each pass finds it unreachable after the start-up
	// bound, kept short here (the default is for slow links).
	r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger,
		InFlight: s.InFlight, CommitAlone: s.CommitAlone, StartupTimeout: frozenStartup})
	for _, m := range []struct {
		mode Mode
		term uint64
	}{{ModeReadOnly, 1}, {ModeReadOnly, 2}, {ModeFenced, 2}, {ModeSolo, 1}, {ModeDual, 2}} {
		s.SetMode(m.mode, m.term)
		if rep := resolve(t, r, nil, nil, doubt); !rep.PeerUnreachable {
			t.Fatalf("%v in term %d: the pass reached the frozen peer database", m.mode, m.term)
		}
		if !slices.Equal(preparedGIDs(t, e.local), []string{g}) {
			t.Fatalf("%v in term %d: %s was settled with the peer unreachable", m.mode, m.term, g)
		}
	}

	if downs.Load() == 0 {
		t.Fatal("dual in term 2: the passes did not ask to go solo (OnPeerDown)")
	}

	// This site master again of term 2 with the peer not in step (promote: the shipper first,
	// down, then dual mode; the first commit would go solo), and going solo is acknowledged now.
	if err := WriteTermRecord(ctx, local, 2, "site1", false); err != nil {
		t.Fatal(err)
	}
	sh.SetTerm(2)
	sh.SetBackup(false)
	sh.Down("promotion", errors.New("the peer database is not in step"))
	s.SetMode(ModeDual, 2)
	soloOK.Store(true)
	downs.Store(0)
	// `tandem resolve` (no running shim to ask) leaves it in doubt.
	outside := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: e.peerDSN(), Logger: e.logger, StartupTimeout: frozenStartup})
	resolve(t, outside, nil, nil, doubt)
	// The prepared transaction holds its row: a write to it waits (straight on the database,
	// bounded by lock_timeout).
	probe, err := local.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if _, err := probe.ExecContext(ctx, "SET lock_timeout = '300ms'"); err != nil {
		t.Fatal(err)
	}
	if _, err := probe.ExecContext(ctx, "INSERT INTO acct VALUES (2, 0)"); err == nil || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("a write to the in-doubt row: %v, want a lock timeout", err)
	}

	resolve(t, r, []string{g}, nil)
	if m, term := s.Mode(); m != ModeSolo || term != 2 || downs.Load() != 1 {
		t.Fatalf("after committing %s alone: %v in term %d, %d calls of OnPeerDown; want solo in term 2 after one", g, m, term, downs.Load())
	}
	if gids := preparedGIDs(t, e.local); len(gids) > 0 {
		t.Fatalf("still prepared on site1's database: %v", gids)
	}
	if !hasRow(t, e.local, 2) {
		t.Fatal("row 2 not committed on site1's database")
	}
	resolve(t, r, nil, nil)
	if _, err := conn.Exec(ctx, "UPDATE acct SET bal = bal + 10 WHERE id = 2"); err != nil {
		t.Fatalf("a solo write to the row once the gid is committed: %v", err)
	}

	// site2's database thaws: catch-up (after a pass, as the master's loop runs it) ships the
	// gid's changes and the update after them.
	resume()
	for {
		if _, err := r.ResolveOnce(ctx); err != nil {
			t.Logf("resolver pass: %v", err)
		}
		err := sh.CatchUp(ctx, nil)
		if err == nil && sh.PeerSynced() {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("catch-up did not finish: %v", err)
		}
		t.Logf("catch-up: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
	for i, c := range e.clusters() {
		if g := preparedGIDs(t, c); len(g) > 0 {
			t.Errorf("%s database still holds prepared %v", sideName(i), g)
		}
	}
	peer := e.peer.Open(t, e.peer.Database())
	var bal, decisions int
	if err := peer.QueryRowContext(ctx, "SELECT bal FROM acct WHERE id = 2").Scan(&bal); err != nil || bal != 12 {
		t.Errorf("row 2 on site2's database: bal %d, %v; want 12", bal, err)
	}
	if err := peer.QueryRowContext(ctx, "SELECT count(*) FROM tandem.decisions WHERE gid = $1", g).Scan(&decisions); err != nil || decisions != 1 {
		t.Errorf("decision rows of %s on site2's database: %d, %v; want 1", g, decisions, err)
	}
	diffs, err := Verify(ctx, e.localDSN(), e.peerDSN())
	if err != nil || len(diffs) > 0 {
		t.Errorf("verify: %v %v", diffs, err)
	}
	t.Logf("shipper: %+v", sh.Stats())
}

// frozenStartup is the resolvers' start-up bound in the tests whose peer database is frozen
// (it accepts connections and hangs).
const frozenStartup = 2 * time.Second

// frozenInDoubt freezes the peer database (thawed by resume, or when the test ends) and makes
// the dual commit of INSERT INTO acct VALUES (2, 2) on conn — a shim that may not go solo —
// end in doubt; it returns that commit's gid, prepared on site1's database only, of term 1.
func (e *resolveEnv) frozenInDoubt(t *testing.T, ctx context.Context, conn *pgx.Conn) (gid string, resume func()) {
	t.Helper()
	if err := e.peer.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume = func() {
		if !resumed {
			resumed = true
			if err := e.peer.Resume(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(resume)
	_, err := conn.Exec(ctx, "INSERT INTO acct VALUES (2, 2)")
	if err == nil || !strings.Contains(err.Error(), "in doubt") {
		t.Fatalf("a dual commit with the peer database frozen and no going solo: %v, want in doubt", err)
	}
	gids := preparedGIDs(t, e.local)
	if len(gids) != 1 || !strings.HasPrefix(gids[0], "tandem_site1_1_") {
		t.Fatalf("prepared on site1's database: %v, want one gid of site1, term 1", gids)
	}
	return gids[0], resume
}
