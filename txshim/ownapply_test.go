package txshim

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestApplyTerminatesBlockerNamedAsApply: the watchdog knows the shipper's own apply sessions
// by their backend pids, not by application_name, which any client can set. A session on the
// peer that calls itself "tandem apply" and holds a row lock is a blocker like any other: it
// is terminated and the dual commit goes through. (When the watchdog spared every session
// whose name starts with "tandem apply", the apply waited behind it until the commit's
// deadline, and catch-up would never have finished.)
func TestApplyTerminatesBlockerNamedAsApply(t *testing.T) {
	t.Parallel()
	p := startAcctPair(t)
	s := startShipper(t, p)
	ctx := capCtx(t, 30*time.Second)
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"SET application_name = 'tandem apply'", "BEGIN", "UPDATE acct SET balance = -1 WHERE id = 1"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance + 5 WHERE id = 1`)
	t.Logf("dual commit through a row blocked by a session named as an apply took %v", time.Since(start))
	if _, err := blocker.ExecContext(ctx, "COMMIT"); err == nil {
		t.Error("the blocking transaction committed after the apply")
	}
	requireSame(t, p)
	if b := queryOne[int](t, p.pdb, `SELECT balance FROM acct WHERE id = 1`); b != 105 {
		t.Errorf("balance on the peer = %d, want 105", b)
	}
}

// TestResolverIgnoresIdleClientNamedAsApply: a client session on the peer that calls itself
// "tandem apply" and sits idle in a transaction is not an apply about to start: an apply's
// BEGIN and the statement that names it after its gid go in one pipeline, with no Sync between
// them, so its session is never idle before it is named. The resolver rolls back a gid prepared
// only on the own site without waiting for that session, and leaves it alone. (Before, every
// pass waited stopAppliesWait for it to "name its gid" and then gave up with "try again", so
// the gid stayed prepared, holding its rows' locks, for as long as the client idled.)
func TestResolverIgnoresIdleClientNamedAsApply(t *testing.T) {
	t.Parallel()
	idleClientNamedAsApply(t, false)
}

// idleClientNamedAsApply is TestResolverIgnoresIdleClientNamedAsApply, with the client's
// session under track_activities = off when trackOff.
func idleClientNamedAsApply(t *testing.T, trackOff bool) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	client, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	steps := []string{`SET application_name = ` + sqlLiteral(applyAppName), `BEGIN`, `SELECT count(*) FROM kv`}
	if trackOff {
		steps = append([]string{`SET track_activities = off`}, steps...)
	}
	for _, q := range steps {
		if _, err := client.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'disabled'`, applyAppName); trackOff && n != 1 {
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

// TestResolverEndsLateApplyLongName: PostgreSQL keeps 63 bytes of an application_name, and an
// apply names its session after its gid: with a long site name (32 characters are allowed)
// and a ten-digit xid, "tandem apply <gid>" is longer. The resolver still finds and ends the
// apply session of the gid before it rolls back the own copy. (When the name was cut short,
// stopApplies never matched it, rolled the own copy back at once, and the apply prepared the
// gid on the peer once its row lock was free — the databases apart.)
func TestResolverEndsLateApplyLongName(t *testing.T) {
	t.Parallel()
	site := strings.Repeat("s", 32)
	gid := gidFor(site, 12, 4000000001)
	if n := len(applyAppName + " " + gid); n <= 63 {
		t.Fatalf("the name is %d bytes: not past PostgreSQL's limit", n)
	}
	// The longest gids still get names of their own.
	a, b := applySessionName(gidFor(site, math.MaxUint64, math.MaxUint64)), applySessionName(gidFor(site, math.MaxUint64, math.MaxUint64-1))
	if len(a) > 63 || a == b {
		t.Fatalf("session names %q and %q: longer than 63 bytes, or the same", a, b)
	}
	resolverEndsApply(t, lateApply{
		site: site, gid: gid,
		startName: applyAppName, // as dialApply names every apply connection; then as startApply does
		script: `BEGIN; SELECT set_config('application_name', ` + sqlLiteral(applySessionName(gid)) + `, true);
UPDATE kv SET v = 'late' WHERE k = 1; PREPARE TRANSACTION ` + sqlLiteral(gid),
		what:      "the orphaned apply to wait for the row lock",
		ready:     `SELECT count(*) FROM pg_stat_activity WHERE starts_with(application_name, $1) AND wait_event_type = 'Lock'`,
		readyName: applyAppName + " ",
	})
}
