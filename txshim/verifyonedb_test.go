package txshim

import (
	"testing"
	"time"
)

// TestVerifyOneDatabaseTwice: local_dsn and peer_dsn that reach one database by two spellings —
// TCP and the Unix socket, a host name and its address, an alias — pass the configuration's
// check (which compares host, port and database as written), and verify then compared that
// database with itself: "identical", whatever the other site's database holds. It must refuse
// (not compared); two databases of one server are still compared.
func TestVerifyOneDatabaseTwice(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE TABLE kv (k int PRIMARY KEY)`)
	p.local.Exec(t, `CREATE DATABASE other`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.local.SocketDSN("app"))
	t.Logf("one database by TCP and by socket: %q, %v", diffs, err)
	if err == nil {
		t.Errorf("verify compared a database with itself: %q", diffs)
	}
	diffs, err = Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.local.SocketDSN("other"))
	if err != nil || len(diffs) == 0 {
		t.Errorf("two databases of one server: %q, %v; want table kv named", diffs, err)
	}
}

// TestVerifySnapshotHoldsNoCatalogLock: the look for the local session among the peer's ran in
// the peer's snapshot transaction, whose locks on pg_stat_activity's catalogs (pg_database,
// pg_authid) were then held for the whole verification, hours on a large database: a VACUUM
// FULL or CLUSTER of them waited as long. It runs in a session of its own.
func TestVerifySnapshotHoldsNoCatalogLock(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	ctx := capCtx(t, 20*time.Second)
	v, err := beginVerify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	var pid int
	if err := v.txs[1].QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	held := queryOne[string](t, p.pdb, `SELECT coalesce(string_agg(relation::regclass::text, ', ' ORDER BY 1), '')
		FROM pg_locks WHERE pid = $1 AND relation IN ('pg_database'::regclass, 'pg_authid'::regclass)`, pid)
	if held != "" {
		t.Errorf("the peer's snapshot transaction holds locks on %s for the whole verification", held)
	}
}
