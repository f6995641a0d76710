package txshim

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestResolverEndsUnnamedApply: an apply session on the peer that has not named itself after
// its gid yet — its connection just opened, or its backend not yet at the statement that names
// it — bears only the startup name of every apply connection. The resolver, before it rolls
// back the own copy on the word of the peer (prepared nowhere there), waits until such a busy
// session names itself and ends it, so that it never PREPAREs the gid on the peer afterwards.
// The delay before the naming is played by pg_sleep.
// (Before stopApplies waited for such sessions, the pass rolled the local copy back at once
// and the apply prepared the gid on the peer once free.)
func TestResolverEndsUnnamedApply(t *testing.T) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	// A lock holds the apply once it named itself, as in TestResolverEndsLateApply: ended
	// there, or else it would PREPARE once the lock is free.
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
	gid := gidFor("a", 1, 1)
	prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'late' WHERE k = 1`)
	cfg, err := pgconn.ParseConfig(p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = applyAppName // as dialApply names every apply connection
	orphan, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Close(context.Background())
	late := make(chan error, 1)
	go func() {
		_, err := orphan.Exec(ctx, `BEGIN; SELECT pg_sleep(2); SELECT set_config('application_name', `+sqlLiteral(applyAppName+" "+gid)+`, true);
UPDATE kv SET v = 'late' WHERE k = 1; PREPARE TRANSACTION `+sqlLiteral(gid)).ReadAll()
		late <- err
	}()
	waitFor(t, "the unnamed apply to start", func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE '%pg_sleep%' AND state = 'active'`, applyAppName) == 1
	})

	rep, err := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger()}).ResolveOnce(ctx)
	if err != nil || !slices.Equal(rep.RolledBack, []string{gid}) {
		t.Fatalf("resolver pass: %+v, %v; want %s rolled back", rep, err, gid)
	}
	if _, err := blocker.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-late:
	case <-time.After(10 * time.Second):
		t.Fatal("the unnamed apply neither ended nor finished")
	}
	if preparedOn(t, p.pdb, gid) {
		p.pdb.Exec("ROLLBACK PREPARED " + sqlLiteral(gid))
		t.Fatalf("%s was prepared on the peer after the resolver rolled the local copy back", gid)
	}
	if v := queryOne[string](t, p.pdb, `SELECT v FROM kv WHERE k = 1`); v != "one" {
		t.Errorf("peer row = %q, want one", v)
	}
}
