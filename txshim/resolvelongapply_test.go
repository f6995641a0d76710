package txshim

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestResolverOutsideLeavesLongApply: a pass of `tandem resolve` (Settle set, no InFlight)
// meets a dual commit older than Settle whose apply is still running on the peer — a large
// transaction, whose apply may take its size allowance (a second per MiB) on top of what Settle
// covers. Ending that apply and rolling the local copy back failed a commit nothing refused:
// the pass leaves the gid alone while its apply session is at work, and the commit goes
// through. The apply is played by a session named as one, busy in pg_sleep before its PREPARE.
func TestResolverOutsideLeavesLongApply(t *testing.T) {
	t.Parallel()
	outsideLongApply(t, false)
}

// outsideLongApply is TestResolverOutsideLeavesLongApply, with the apply's session under
// track_activities = off when trackOff: the outside pass must then leave the gid alone and
// say why (an error naming track_activities) rather than take a hidden session for gone.
func outsideLongApply(t *testing.T, trackOff bool) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	gid := lateGID
	prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'long' WHERE k = 1`)
	cfg, err := pgconn.ParseConfig(p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = applyAppName
	if trackOff {
		cfg.RuntimeParams["track_activities"] = "off"
	}
	apply, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const settle = time.Second
	done := make(chan error, 1)
	actx, stop := context.WithCancel(ctx)
	go func() {
		_, err := apply.Exec(actx, `BEGIN; SELECT set_config('application_name', `+sqlLiteral(applySessionName(gid))+`, true);
UPDATE kv SET v = 'long' WHERE k = 1; SELECT pg_sleep(4); PREPARE TRANSACTION `+sqlLiteral(gid)).ReadAll()
		done <- err
	}()
	defer func() {
		stop()
		<-done
		apply.Close(context.Background())
	}()
	// Wait events are shown whatever track_activities says; the query and state are not.
	atWork := `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'`
	if trackOff {
		atWork = `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep' AND state = 'disabled'`
	}
	waitFor(t, "the apply to be at work", func() bool {
		return queryOne[int](t, p.pdb, atWork, applySessionName(gid)) == 1
	})
	time.Sleep(settle + 100*time.Millisecond) // the gid is older than Settle
	outside := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger(),
		Settle: settle})
	rep, err := outside.ResolveOnce(ctx)
	switch {
	case len(rep.Committed)+len(rep.RolledBack) > 0 || (!trackOff && (err != nil || len(rep.InDoubt) > 0)):
		t.Errorf("outside pass during a long apply (track_activities off: %v): %+v, %v; want it left alone", trackOff, rep, err)
	case trackOff && (err == nil || !strings.Contains(err.Error(), "track_activities")):
		t.Errorf("outside pass: %v; want an error naming track_activities", err)
	}
	select {
	case err := <-done:
		done <- err // for the deferred close
		if err != nil {
			t.Fatalf("the apply the outside pass met: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the apply never finished")
	}
	// Prepared on both: a pass once the peer's copy is older than Settle commits it.
	time.Sleep(settle + 100*time.Millisecond)
	if rep, err := outside.ResolveOnce(ctx); err != nil || !slices.Equal(rep.Committed, []string{gid}) {
		t.Fatalf("pass after the apply: %+v, %v; want %s committed", rep, err, gid)
	}
	for _, db := range []string{"local", "peer"} {
		d := p.ldb
		if db == "peer" {
			d = p.pdb
		}
		if v := queryOne[string](t, d, `SELECT v FROM kv WHERE k = 1`); v != "long" {
			t.Errorf("%s row = %q, want long", db, v)
		}
	}
	requireSame(t, p)
}

// TestResolverOutsideEndsStuckApply: what TestResolverOutsideLeavesLongApply leaves alone is
// an apply at work. One whose client went away and that has waited for a row lock since more
// than Settle ago — a running apply's watchdog ends its blockers within seconds — is abandoned:
// the outside pass still ends it and settles the gid, as TestResolverEndsLateApply's does.
func TestResolverOutsideEndsStuckApply(t *testing.T) {
	t.Parallel()
	la := lockedLateApply()
	la.settle = time.Second
	resolverEndsApply(t, la)
}

// TestResolverOutsideEndsIdleApply: likewise an apply session idle in its transaction since
// more than Settle ago (its client gone without a word, or stopped) is abandoned.
func TestResolverOutsideEndsIdleApply(t *testing.T) {
	t.Parallel()
	resolverEndsApply(t, lateApply{
		startName: applyAppName,
		script:    `BEGIN; SELECT set_config('application_name', ` + sqlLiteral(applySessionName(lateGID)) + `, true)`,
		what:      "the orphaned apply to idle",
		ready:     `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle in transaction'`,
		readyName: applySessionName(lateGID),
		settle:    time.Second,
	})
}
