package txshim

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// TestDecideCommitOnBackupOnly: a gid of site b — master once, the backup now — left prepared
// on b's database only (the master's, a's, never prepared it). Committing it there alone would
// put its rows on the backup only: nothing ships a backup's commits to the master, and a later
// resync copies the master's tables over them. `tandem resolve -commit` (Decide) refuses, saying
// why, from either site; the same decision for a gid of the master's own site, prepared on the
// master only, commits it (the master's slot ships it to the peer).
func TestDecideCommitOnBackupOnly(t *testing.T) {
	t.Parallel()
	p, ctx := decidePair(t)
	gid := gidFor("b", 1, 7)
	prepareLocal(t, p.pdb, gid, `INSERT INTO kv VALUES (1, 'backup only')`)

	for _, site := range []struct{ name, local, peer string }{
		{"a", p.local.DSN("app"), p.peer.DSN("app")}, // run at the master
		{"b", p.peer.DSN("app"), p.local.DSN("app")}, // run at the backup
	} {
		r := NewResolver(ResolverConfig{Site: site.name, LocalDSN: site.local, PeerDSN: site.peer, Logger: quietLogger()})
		err := r.Decide(ctx, gid, true)
		if err == nil || !strings.Contains(err.Error(), "not the master") {
			t.Errorf("Decide(commit) at site %s: %v; want a refusal naming the master", site.name, err)
		}
		if !preparedOn(t, p.pdb, gid) {
			t.Fatalf("Decide at site %s finished %s on the backup's database", site.name, gid)
		}
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`); n != 0 {
		t.Fatalf("backup's database has %d rows the master's lacks", n)
	}
	// Rolling it back is the decision that keeps the databases alike.
	r := NewResolver(ResolverConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Logger: quietLogger()})
	if err := r.Decide(ctx, gid, false); err != nil {
		t.Fatal(err)
	}
	if preparedOn(t, p.pdb, gid) {
		t.Fatal("still prepared after -rollback")
	}

	// The master's own gid, prepared on the master only: committed there, from where the slot
	// ships it.
	own := gidFor("a", 2, 8)
	prepareLocal(t, p.ldb, own, `INSERT INTO kv VALUES (2, 'master')`)
	if err := r.Decide(ctx, own, true); err != nil {
		t.Fatalf("Decide(commit) of the master's gid: %v", err)
	}
	if preparedOn(t, p.ldb, own) || queryOne[int](t, p.ldb, `SELECT count(*) FROM kv WHERE k = 2`) != 1 {
		t.Fatal("the master's gid was not committed on the master")
	}
}

// decidePair starts the two databases of Decide's tests: table kv, installed, both holding
// site a's term 2 record (a is the master).
func decidePair(t *testing.T) (*capPair, context.Context) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if err := WriteTermRecord(ctx, db, 2, "a", true); err != nil {
			t.Fatal(err)
		}
	}
	return p, ctx
}
