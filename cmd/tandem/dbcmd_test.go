package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// TestResolveUnsettledExit: tandem resolve exits 0 only when nothing is left to settle. A
// transaction it left alone because it was prepared too recently (a running shim may still be
// committing it), and a peer database it could not reach (whatever is prepared there is
// unsettled), made it exit 0 saying nothing, as if every transaction were settled.
func TestResolveUnsettledExit(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN(c.Database())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there: the peer database is down

	// The peer database is down, nothing is prepared locally.
	resolveDown := resolveSite(t, dsn, "postgres://postgres@"+closed+"/app?sslmode=disable&connect_timeout=2")
	if code, out := resolveDown(); code != 1 || !strings.Contains(out, "peer database") {
		t.Errorf("peer database down: exit %d, output %q; want exit 1 saying the peer database was not reached", code, out)
	}

	// Both reachable (the peer: another database of the cluster); one transaction prepared just now.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := createPeerDB(ctx, t, dsn)
	gid := prepareSiteGID(ctx, t, db, "young")
	resolve := resolveSite(t, dsn, c.DSN("peer"))
	if code, out := resolve(); code != 1 || !strings.Contains(out, gid) {
		t.Errorf("a transaction prepared just now: exit %d, output %q; want exit 1 naming %s", code, out, gid)
	}
	if _, err := db.ExecContext(ctx, `ROLLBACK PREPARED '`+gid+`'`); err != nil {
		t.Fatal(err)
	}
	// Nothing left: exit 0, and it says so (it printed nothing, which left an operator asking
	// whether the pass ran).
	if code, out := resolve(); code != 0 || !strings.Contains(out, "settled: no Tandem transaction left in doubt") {
		t.Errorf("nothing prepared: exit %d, output %q; want 0, saying nothing is left in doubt", code, out)
	}
}

// TestResolveSettleCoversDecoderLag: tandem resolve left alone what was prepared within
// commit_timeout + 5 s, but a dual commit waits up to 30 s more for a decoder that is behind:
// a pass then rolled back a transaction a running shim was still committing. A transaction
// prepared a little longer than commit_timeout + 5 s ago is left alone now.
func TestResolveSettleCoversDecoderLag(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN(c.Database())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := createPeerDB(ctx, t, dsn)
	gid := prepareSiteGID(ctx, t, db, "lagging")
	resolve := resolveSiteTimeout(t, dsn, c.DSN("peer"), "1s")
	time.Sleep(1*time.Second + drainMargin + time.Second)
	if code, out := resolve(); code != 1 || !strings.Contains(out, "left alone: "+gid) {
		t.Errorf("a transaction prepared %v ago, commit_timeout 1s: exit %d, output %q; want exit 1, left alone", 1*time.Second+drainMargin+time.Second, code, out)
	}
	if n := queryCount(t, db, gid); n != 1 {
		t.Errorf("%s prepared %d times after the pass, want 1 (still prepared)", gid, n)
	}
}

// prepareSiteGID prepares, in db, a transaction that makes table, under the gid site2's shim
// would give it (term 1), and rolls it back at the test's end if it is still prepared then.
func prepareSiteGID(ctx context.Context, t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var xid string
	if err := conn.QueryRowContext(ctx, `BEGIN; SELECT txid_current()::text`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	gid := "tandem_site2_1_" + xid
	if _, err := conn.ExecContext(ctx, `CREATE TABLE `+table+` (id int); PREPARE TRANSACTION '`+gid+`'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.ExecContext(context.Background(), `ROLLBACK PREPARED '`+gid+`'`) })
	return gid
}

// queryCount counts the prepared transactions named gid in db's cluster.
func queryCount(t *testing.T, db *sql.DB, gid string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1`, gid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// resolveSite writes a site2 file whose shim has local and peer as its databases, and returns
// `tandem resolve -config` that file with more arguments: its exit code and output.
func resolveSite(t *testing.T, local, peer string) func(args ...string) (int, string) {
	t.Helper()
	return resolveSiteTimeout(t, local, peer, "30s")
}

// resolveSiteTimeout is resolveSite with the shim's commit_timeout set to commitTimeout.
func resolveSiteTimeout(t *testing.T, local, peer, commitTimeout string) func(args ...string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site2.toml")
	src := "site = \"site2\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"" + local + "\"\npeer_dsn = \"" + peer + "\"\ncommit_timeout = \"" + commitTimeout + "\"\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"resolve", "-config", cfg}, args...), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
}

// TestVerifyExitCodes: tandem verify exits 0 for identical databases, 1 for a difference and 2
// when it could not compare (the peer database down): a script checking its exit code must not
// take an unreachable database for a difference, nor a difference for a failure to look.
func TestVerifyExitCodes(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	if _, err := c.Open(t, c.Database()).Exec("CREATE DATABASE peer"); err != nil {
		t.Fatal(err)
	}
	local, peer := c.DSN(c.Database()), c.DSN("peer")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	verify := func(peerDSN string) (int, string) {
		f := filepath.Join(dir, "site1.toml")
		src := "site = \"site1\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n" +
			"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"" + local + "\"\npeer_dsn = \"" + peerDSN + "\"\n"
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run([]string{"verify", "-config", f}, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	if code, out := verify(peer); code != 0 {
		t.Errorf("identical databases: exit %d, output %q", code, out)
	}
	if _, err := c.Open(t, c.Database()).Exec("CREATE TABLE only_here (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if code, out := verify(peer); code != 1 || !strings.Contains(out, "only_here") {
		t.Errorf("a table on one side: exit %d, output %q; want exit 1 naming it", code, out)
	}
	if code, out := verify("postgres://postgres@" + closed + "/app?sslmode=disable&connect_timeout=2"); code != 2 {
		t.Errorf("peer database down: exit %d, output %q; want exit 2", code, out)
	}
}

// TestDatabaseCommandsUnneededSecrets: tandem install, verify and resolve need the site's
// connection strings, not the running sidecar's secret files (gossip key, admin token, the
// shim's users file and TLS pair): with those missing (and, unless the test runs as root,
// unreadable) each command runs, where it failed on them before. A file they do need — the
// CA file the peer DSN names — still fails them clearly, and tandem run still refuses the
// file without its secrets.
func TestDatabaseCommandsUnneededSecrets(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	if _, err := c.Open(t, c.Database()).Exec("CREATE DATABASE peer"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	missing := func(name string) string { return filepath.Join(dir, "missing", name) }
	key, token, users, tlsKey, tlsCert := missing("gossip.key"), missing("admin.token"), missing("users"), missing("shim.key"), missing("shim.crt")
	if os.Geteuid() != 0 { // unreadable, not missing, for the gossip key and the admin token
		for _, p := range []*string{&key, &token} {
			*p = filepath.Join(dir, filepath.Base(*p))
			if err := os.WriteFile(*p, []byte("0123456789abcdef\n"), 0o200); err != nil {
				t.Fatal(err)
			}
		}
	}
	writeCfg := func(name, peerDSN string) string {
		t.Helper()
		f := filepath.Join(dir, name)
		src := secretsSiteTOML(siteSecrets{dataDir: dir, key: key, users: users, tlsCert: tlsCert, tlsKey: tlsKey,
			localDSN: c.DSN(c.Database()), peerDSN: peerDSN, token: token})
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	cmd := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	cfg := writeCfg("site1.toml", c.DSN("peer"))
	for _, name := range []string{"install", "verify", "resolve"} {
		if code, out := cmd(name, "-config", cfg); code != 0 {
			t.Errorf("tandem %s with the sidecar's secret files unreadable: exit %d, output:\n%s", name, code, out)
		}
	}

	// A file these commands need: the peer DSN's CA file. The error names its setting, not the
	// file: it quotes nothing of a DSN.
	ca := missing("peer-ca.pem")
	needs := writeCfg("needs.toml", c.DSN("peer")+"&sslmode=verify-full&sslrootcert="+ca)
	for _, name := range []string{"install", "verify", "resolve"} {
		code, out := cmd(name, "-config", needs)
		if code != 2 || !strings.Contains(out, "txshim.peer_dsn") || !strings.Contains(out, "sslrootcert: the file does not exist") {
			t.Errorf("tandem %s, the peer DSN's CA file missing: exit %d, output:\n%s\nwant exit 2 naming txshim.peer_dsn and sslrootcert", name, code, out)
		}
	}

	// tandem run needs every one of them: a file it cannot use, exit 2 (TestBadConfigExitsTwo).
	code, out := cmd("run", "-config", cfg)
	for _, k := range []string{"gossip.secret_key_file", "admin.token_file", "txshim.users_file", "txshim.tls_key_file"} {
		if code != 2 || !strings.Contains(out, k) {
			t.Errorf("tandem run with its secret files unreadable: exit %d, output:\n%s\nwant exit 2 naming %s", code, out, k)
		}
	}
}

// siteSecrets are the parts of secretsSiteTOML's site file that tests vary: every secret file a
// running member reads, and the connection strings.
type siteSecrets struct {
	dataDir, key, users, tlsCert, tlsKey, localDSN, peerDSN, adminListen, token string
}

// secretsSiteTOML is a site file of site1 that names every kind of secret file (gossip key,
// the shim's users file and TLS pair, the admin token), for tests of who needs to read which.
func secretsSiteTOML(s siteSecrets) string {
	admin := ""
	if s.adminListen != "" {
		admin = fmt.Sprintf("listen = %q\n", s.adminListen)
	}
	return fmt.Sprintf(`site = "site1"
data_dir = %q
[gossip]
bind = "127.0.0.1:7946"
secret_key_file = %q
[server]
[[server.endpoint]]
name = "op"
address = "127.0.0.1:7000"
[txshim]
listen = "127.0.0.1:6432"
users_file = %q
tls_cert_file = %q
tls_key_file = %q
local_dsn = %q
peer_dsn = %q
[admin]
%stoken_file = %q
`, s.dataDir, s.key, s.users, s.tlsCert, s.tlsKey, s.localDSN, s.peerDSN, admin, s.token)
}

// TestResolveAcceptUnknownOutcome: `tandem resolve -commit` of a gid prepared only on the other
// site's database, while the gid's own site's database cannot tell whether it committed (its
// xid is "in the future" there, as after a restore), is refused, naming the override; with
// -accept-unknown-outcome it is committed. The flag alone is a usage error.
func TestResolveAcceptUnknownOutcome(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN(c.Database())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createPeerDB(ctx, t, dsn)
	peer, err := txshim.OpenDB(c.DSN("peer"))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	// A gid of this site (site2), its xid far past any the local database assigned, prepared on
	// the peer database only.
	gid := fmt.Sprintf("tandem_site2_1_%d", uint64(1)<<40+5)
	conn, err := peer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN; CREATE TABLE applied (id int); PREPARE TRANSACTION '`+gid+`'`); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	defer peer.ExecContext(context.Background(), `ROLLBACK PREPARED '`+gid+`'`)
	resolve := resolveSite(t, dsn, c.DSN("peer"))
	if code, out := resolve("-accept-unknown-outcome"); code != 2 || !strings.Contains(out, "goes with -commit or -rollback") {
		t.Errorf("-accept-unknown-outcome alone: exit %d, %q; want a usage error", code, out)
	}
	if code, out := resolve("-commit", gid); code != 1 || !strings.Contains(out, "cannot tell whether its transaction committed") || !strings.Contains(out, "-accept-unknown-outcome") {
		t.Fatalf("-commit with the own outcome unknown: exit %d, %q; want a refusal naming -accept-unknown-outcome", code, out)
	}
	var n int
	if err := peer.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1`, gid).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the refusal %s is prepared %d times (%v), want still prepared", gid, n, err)
	}
	if code, out := resolve("-commit", gid, "-accept-unknown-outcome"); code != 0 {
		t.Fatalf("-commit -accept-unknown-outcome: exit %d, %q; want done", code, out)
	}
	if err := peer.QueryRowContext(ctx, `SELECT count(*) FROM pg_class WHERE relname = 'applied'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after the forced commit the prepared table is there %d times (%v), want committed", n, err)
	}
}

// createPeerDB makes the database "peer" in the cluster of dsn, and returns dsn's database,
// open for the rest of the test.
func createPeerDB(ctx context.Context, t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := txshim.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(ctx, `CREATE DATABASE peer`); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestResolveEmptyGID: -commit or -rollback given an empty gid (a shell variable that was
// empty) is a usage error. It was taken for "not given", and tandem resolve ran a whole
// resolver pass, settling whatever it could on both databases, where the operator asked to
// decide one transaction.
func TestResolveEmptyGID(t *testing.T) {
	t.Parallel()
	// Databases on ports nothing listens on: a pass that went ahead would fail on them (exit 1).
	resolve := resolveSite(t, "postgres://tandem@127.0.0.1:1/wire?connect_timeout=2", "postgres://tandem@127.0.0.1:2/wire?connect_timeout=2")
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"-commit", []string{"-commit", ""}},
		{"-rollback", []string{"-rollback", ""}},
		{"-commit", []string{"-commit=", "-accept-unknown-outcome"}},
	} {
		if code, out := resolve(tc.args...); code != 2 || !strings.Contains(out, tc.flag+" needs") || strings.Contains(out, "reach") {
			t.Errorf("resolve %q: exit %d, %q; want a usage error naming %s", tc.args, code, out, tc.flag)
		}
	}
}
