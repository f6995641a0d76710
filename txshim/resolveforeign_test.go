package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestResolverForeignGIDNotSiteName: any role may prepare a transaction under a gid of its
// choosing that starts with tandem_ and ends in two numbers, as Tandem's do, with a site part
// no site may be named (upper case, a quote, a backslash, a space). The resolver took such a
// gid for the other site's and decided it by that site's database: the status there of an xid
// of the same number, another transaction altogether — committed there, it committed the
// foreign transaction here. Such a gid is "not a gid Tandem makes", in doubt, and an
// operator's decision on it is refused.
func TestResolverForeignGIDNotSiteName(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	// An xid that committed on the peer database.
	x := queryOne[string](t, p.pdb, `INSERT INTO kv VALUES (2, 'peer') RETURNING pg_current_xact_id()::text`)
	if _, err := p.pdb.Exec(`DELETE FROM kv WHERE k = 2`); err != nil {
		t.Fatal(err)
	}
	gid := "tandem_App's 2PC_1_" + x
	prepareLocal(t, p.ldb, gid, `UPDATE kv SET v = 'foreign' WHERE k = 1`)
	t.Cleanup(func() { p.ldb.Exec(`ROLLBACK PREPARED ` + sqlLiteral(gid)) })
	r := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger()})
	rep, err := r.ResolveOnce(ctx)
	if err != nil || len(rep.Committed)+len(rep.RolledBack) > 0 || len(rep.InDoubt) != 1 || rep.InDoubt[0].GID != gid ||
		!strings.Contains(rep.InDoubt[0].Reason, "not a gid Tandem makes") {
		t.Errorf("pass: %+v, %v; want %q in doubt, not a gid Tandem makes", rep, err, gid)
	}
	if err := r.Decide(ctx, gid, true); err == nil || !strings.Contains(err.Error(), "not a gid Tandem makes") {
		t.Errorf("decide commit: %v; want it refused, not a gid Tandem makes", err)
	}
	if !preparedOn(t, p.ldb, gid) {
		t.Errorf("%q is no longer prepared", gid)
	}
	if v := queryOne[string](t, p.ldb, `SELECT v FROM kv WHERE k = 1`); v != "one" {
		t.Errorf("local row = %q, want one", v)
	}
}
