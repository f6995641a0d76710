package txshim

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestResolverOutsideLongApplyTrackActivitiesOff: TestResolverOutsideLeavesLongApply with the
// apply's session under track_activities = off (a setting of the peer's configuration, a role's
// or a connection's): pg_stat_activity then shows its state as "disabled", with no query and no
// state_change, though its application_name still names the gid. A pass of `tandem resolve` must
// not take such a session for gone (and roll the local copy back under a commit still going on):
// it cannot tell whether the apply is at work, so it leaves the gid alone and says why.
func TestResolverOutsideLongApplyTrackActivitiesOff(t *testing.T) {
	t.Parallel()
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
	cfg.RuntimeParams["track_activities"] = "off"
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
	// Wait events are shown whatever track_activities says.
	waitFor(t, "the apply to be at work", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'PgSleep' AND state = 'disabled'`,
			applySessionName(gid)) == 1
	})
	time.Sleep(settle + 100*time.Millisecond) // the gid is older than Settle
	outside := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger(),
		Settle: settle})
	rep, err := outside.ResolveOnce(ctx)
	if len(rep.Committed)+len(rep.RolledBack) > 0 {
		t.Errorf("outside pass during a long apply under track_activities = off: %+v, %v; want it left alone", rep, err)
	}
	if err == nil || !strings.Contains(err.Error(), "track_activities") {
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
	requireSame(t, p)
}

// TestResolverIgnoresIdleClientNamedAsApplyTrackActivitiesOff: TestResolverIgnoresIdleClientNamedAsApply
// with that client's session under track_activities = off. pg_stat_activity then cannot tell an
// idle transaction from an apply's start (its BEGIN and the statement naming it, in one
// pipeline), but an apply names its session within that pipeline: a session that stays unnamed
// in one and the same transaction (the same virtual xid) for longer than that can take is not
// an apply about to name the gid. The pass rolls back the gid prepared only on the own site
// without waiting stopAppliesWait for the client, and leaves the client alone. (Counted as busy
// at every look, it failed every pass with "try again" for as long as the client idled.)
func TestResolverIgnoresIdleClientNamedAsApplyTrackActivitiesOff(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	client, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, q := range []string{`SET track_activities = off`, `SET application_name = ` + sqlLiteral(applyAppName), `BEGIN`, `SELECT count(*) FROM kv`} {
		if _, err := client.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'disabled'`, applyAppName); n != 1 {
		t.Fatalf("%d sessions named %q with their state not shown; want 1", n, applyAppName)
	}
	gid := gidFor("a", 1, 1)
	prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'local' WHERE k = 1`)
	start := time.Now()
	rep, err := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger()}).ResolveOnce(ctx)
	if err != nil || !slices.Equal(rep.RolledBack, []string{gid}) {
		t.Fatalf("resolver pass (%v): %+v, %v; want %s rolled back", time.Since(start).Round(time.Millisecond), rep, err, gid)
	}
	if d := time.Since(start); d > stopAppliesWait/2 {
		t.Errorf("the pass took %v: it waited for the idle client", d)
	}
	if _, err := client.ExecContext(ctx, `COMMIT`); err != nil {
		t.Errorf("the client's session was ended: %v", err)
	}
}
