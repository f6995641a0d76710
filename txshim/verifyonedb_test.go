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
