package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestAdminFlagsConfigErrors: -config with a broken site file shows that file's own error,
// not the errors of reading it as a witness file.
func TestAdminFlagsConfigErrors(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "site1.toml")
	src := "site = \"site1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\nhealth_interval = \"fast\"\n" +
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-config", f}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := f + ":6: server.health_interval: "; !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "witness") {
		t.Errorf("stderr:\n%s\nwant the file's own error %q and nothing about a witness", stderr.String(), want)
	}
}

// TestAdminFlagsWitnessFile: a witness file is still read as one.
func TestAdminFlagsWitnessFile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "witness.toml")
	src := "site = \"witness\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7948\"\n[admin]\nlisten = \"127.0.0.1:1\"\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := adminFlags("status", []string{"-config", f}, &bytes.Buffer{})
	if err != nil || c.base != "http://127.0.0.1:1" {
		t.Errorf("adminFlags = %+v, %v; want the witness's admin address", c, err)
	}
}

// TestAdminFlagsToken: -token-file gives the token, and -admin the address, with or without
// -config (whose token is kept when -admin names another address).
func TestAdminFlagsToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgTok := filepath.Join(dir, "cfgtoken")
	if err := os.WriteFile(cfgTok, []byte("from-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "witness.toml")
	src := "site = \"witness\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7948\"\n[admin]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"" + cfgTok + "\"\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args        []string
		base, token string
	}{
		{[]string{"-admin", "127.0.0.1:2", "-token-file", tok}, "http://127.0.0.1:2", "s3cret"},
		{[]string{"-config", f}, "http://127.0.0.1:1", "from-config"},
		{[]string{"-config", f, "-admin", "127.0.0.1:3"}, "http://127.0.0.1:3", "from-config"},
		{[]string{"-config", f, "-token-file", tok}, "http://127.0.0.1:1", "s3cret"},
	} {
		c, _, err := adminFlags("status", tc.args, &bytes.Buffer{})
		if err != nil || c.base != tc.base || c.token != tc.token {
			t.Errorf("adminFlags(%q) = %+v, %v; want base %s, token %s", tc.args, c, err, tc.base, tc.token)
		}
	}
	if err := os.Chmod(tok, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if _, _, err := adminFlags("status", []string{"-token-file", tok}, &stderr); err == nil || !strings.Contains(stderr.String(), "every user") {
		t.Errorf("a token file every user can read: error %v, stderr %q", err, stderr.String())
	}
}

// TestAdminFlagsTokenFileOverConfig: -token-file overrides the token of -config's file, whose
// admin.token_file is then not read: an operator with a token file of their own, who cannot read
// the sidecar's (or whose host has none at that path), takes the address from -config. The
// command failed (exit 2) on the file it did not need.
func TestAdminFlagsTokenFileOverConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "sidecar-token") // not there: unreadable to the operator
	files := map[string]string{
		"site1.toml": "site = \"site1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n" +
			"[admin]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"" + missing + "\"\n",
		"witness.toml": "site = \"witness\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7948\"\n[admin]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"" + missing + "\"\n",
	}
	for name, src := range files {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		c, _, err := adminFlags("status", []string{"-config", f, "-token-file", tok}, &stderr)
		if err != nil || c.base != "http://127.0.0.1:1" || c.token != "s3cret" {
			t.Errorf("%s with -token-file: %+v, %v, stderr %q; want base http://127.0.0.1:1, token s3cret", name, c, err, stderr.String())
		}
		// Without -token-file the file's token is needed, and its error is shown.
		stderr.Reset()
		if _, _, err := adminFlags("status", []string{"-config", f}, &stderr); err == nil || !strings.Contains(stderr.String(), "admin.token_file") {
			t.Errorf("%s without -token-file: error %v, stderr %q; want the admin.token_file error", name, err, stderr.String())
		}
	}
}

// TestAdminCommandStrayArgs: flags after a command's argument are not read (Go's flag package
// stops at the first argument): "switchover site2 -admin ADDR" went to the default address, a
// member the operator did not name, without the token. Such a command is refused (exit 2), and
// reaches no admin API.
func TestAdminCommandStrayArgs(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintf(w, "%ssite1\n", saidSwitchover) // as a member answers
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	// Databases on ports nothing listens on: a database command that went ahead would fail (exit 1).
	cfg := filepath.Join(t.TempDir(), "site1.toml")
	src := "site = \"site1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n" +
		"[txshim]\nlisten = \"127.0.0.1:6432\"\nlocal_dsn = \"postgres://tandem@127.0.0.1:1/wire?connect_timeout=2\"\npeer_dsn = \"postgres://tandem@127.0.0.1:2/wire?connect_timeout=2\"\n"
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"switchover", "-admin", addr, "site2", "-token-file", "/nonexistent"},
		{"switchover", "-admin", addr, "site2", "site3"},
		{"status", "-admin", addr, "-token-file"},
		{"status", "-admin", addr, "site2"},
		{"clear-split-brain", "-admin", addr, "now"},
		{"resync", "-admin", addr, "site2"},
		{"promote", "-force", "-admin", addr, "site2"},
		{"resolve", "-config", cfg, "tandem_1_2", "-commit", "tandem_1_2"},
		{"verify", "-config", cfg, "site2"},
		{"install", "-config", cfg, "site2"},
		{"run", "-config", "/nonexistent.toml", "site2", "-log-level", "debug"},
		{"witness", "-config", "/nonexistent.toml", "w", "-log-level", "debug"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %q", args, code, stderr.String())
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the admin API", n)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"switchover", "-admin", addr, "site2"}, &stdout, &stderr); code != 0 || hits.Load() != 1 {
		t.Errorf("switchover site2: exit %d, %d requests; stderr %q", code, hits.Load(), stderr.String())
	}
}

// TestSwitchoverEmptySite: an empty SITE (a shell variable left empty) is a usage error. It was
// taken for no SITE, and the master handed control to the best other site: asked of site1 to
// keep control on site1 ("tandem switchover $PREFERRED"), the command moved it away.
func TestSwitchoverEmptySite(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"switchover", "-admin", strings.TrimPrefix(srv.URL, "http://"), ""}, &stdout, &stderr)
	if code != 2 || hits.Load() != 0 || !strings.Contains(stderr.String(), "SITE") {
		t.Errorf("switchover \"\": exit %d, %d requests, stderr %q; want a usage error (exit 2) naming SITE, no request", code, hits.Load(), stderr.String())
	}
}

// TestAdminFlagsEmpty: -admin, -config or -token-file given empty (a shell variable left
// empty) is a usage error. Each was taken for not given: "promote -force -admin $ADDR" asked
// whatever member listens on the default address, not the one meant, and -token-file "" sent
// no token.
func TestAdminFlagsEmpty(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-admin", ""}, {"-config", ""}, {"-admin=", "-token-file", ""}, {"-token-file="}} {
		var stderr bytes.Buffer
		if _, _, err := adminFlags("promote", args, &stderr); err == nil || !strings.Contains(stderr.String(), "empty") {
			t.Errorf("adminFlags(%q): error %v, stderr %q; want a usage error saying the flag is empty", args, err, stderr.String())
		}
	}
}

// TestStatusReplyTooLong: a reply of the admin API past the CLI's bound was cut and printed as
// broken JSON with exit 0; it is an error now. A reply that says its length (Content-Length)
// is refused on that word, without reading what the bound would let through: 64 MiB, which
// on a loaded machine (or a slow link to the other site) the command's 10 s did not always
// read, and it failed with "context deadline exceeded" instead of the reason. Here the server
// sends no more than the header says until the client is gone, so that only the length tells.
// A reply of unknown length (chunked) is read up to the bound: that is checked on the
// command's client itself, with a timeout a loaded machine does not run out.
func TestStatusReplyTooLong(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(maxAdminReply+1))
		io.WriteString(w, `{"pad": "`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-admin", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr); code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "longer than") {
		t.Errorf("a /status of %d bytes (Content-Length): exit %d, %d bytes on stdout, stderr %q; want exit 1, nothing printed, the reason", maxAdminReply+1, code, stdout.Len(), stderr.String())
	}

	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pad := bytes.Repeat([]byte("x"), 1<<20)
		io.WriteString(w, `{"pad": "`)
		for n := 0; n <= maxAdminReply; n += len(pad) {
			if _, err := w.Write(pad); err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	}))
	defer chunked.Close()
	c := &adminClient{base: chunked.URL, http: newAdminHTTP(5 * time.Minute), cli: true}
	var out bytes.Buffer
	if err := c.do(http.MethodGet, "/status", &out); err == nil || out.Len() != 0 || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a /status past %d bytes, of unknown length: %v, %d bytes written; want the reason, nothing written", maxAdminReply, err, out.Len())
	}
}

// TestPromoteAcceptLossRequest: promote -accept-loss TERM asks the admin API for accept_loss=TERM
// (not force=1, which would only lift the cold-start wait), and promote without either flag asks
// nothing.
func TestPromoteAcceptLossRequest(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.RequestURI())
		fmt.Fprintf(w, "site2%s4; …\n", saidForced) // as a member answers
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"promote", "-admin", addr}, 2},
		{[]string{"promote", "-accept-loss", "7", "-admin", addr}, 0},
		{[]string{"promote", "-force", "-admin", addr}, 0},
		// Term 0 is no term: it was taken for "not given", and with -force made a plain -force.
		{[]string{"promote", "-force", "-accept-loss", "0", "-admin", addr}, 2},
		{[]string{"promote", "-accept-loss", "x", "-admin", addr}, 2},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr %q", tc.args, code, tc.code, stderr.String())
		}
	}
	want := []string{"POST /promote?accept_loss=7", "POST /promote?force=1"}
	if !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

// TestAdminUnauthorizedSaysWhatToDo: refused for a missing or wrong token, an admin command says
// where the token comes from, and exits 1.
func TestAdminUnauthorizedSaysWhatToDo(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-admin", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "admin.token_file") || !strings.Contains(stderr.String(), "-token-file") {
		t.Errorf("stderr %q does not say where the token comes from", stderr.String())
	}
}

// TestAdminConfigUnreadableSecrets: an operator given the admin token only (not the gossip key,
// the shim's users file, its TLS key or a file its DSNs name) runs `tandem status -config F`:
// the command reads F for the admin address and token and has no use for the other secrets,
// so that it fails on them, "permission denied", was an operator locked out of the admin API.
func TestAdminConfigUnreadableSecrets(t *testing.T) {
	t.Parallel()
	if path := os.Getenv("TANDEM_TEST_ADMIN_CONFIG"); path != "" {
		// The operator's side (another user when the test runs as root).
		var stdout, stderr bytes.Buffer
		code := run([]string{"status", "-config", path}, &stdout, &stderr)
		fmt.Printf("EXIT %d\nSTDOUT %s\nSTDERR %s\n", code, stdout.String(), stderr.String())
		return
	}
	const operator = 65534 // nobody
	root := os.Geteuid() == 0
	dir, err := os.MkdirTemp("", "tandem-admin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, text string, mode os.FileMode, owner int) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if root && owner >= 0 {
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	secret := os.FileMode(0o600) // the sidecar's user's own, other users cannot read
	if !root {
		secret = 0o200 // not even this user can read it: the operator's view
	}
	key := write("gossip.key", "0123456789abcdef", secret, -1)
	users := write("users", "app:pw\n", secret, -1)
	tlsKey := write("shim.key", "not read", secret, -1)
	rootCert := write("peer-ca.pem", "not read", secret, -1)
	token := write("token", "s3cret\n", 0o600, operator)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"site":"site1","role":"master"}`)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	src := secretsSiteTOML(siteSecrets{dataDir: "/d", key: key, users: users, tlsCert: rootCert, tlsKey: tlsKey,
		localDSN: "postgres://tandem@127.0.0.1:1/wire", peerDSN: "postgres://tandem@127.0.0.2:1/wire?sslmode=verify-full&sslrootcert=" + rootCert,
		adminListen: addr, token: token})
	cfg := write("site1.toml", src, 0o644, -1)

	// status -config F run by the operator (another user when the test runs as root)
	status := func(cfg string) string {
		t.Helper()
		if !root {
			var stdout, stderr bytes.Buffer
			code := run([]string{"status", "-config", cfg}, &stdout, &stderr)
			return fmt.Sprintf("EXIT %d\nSTDOUT %s\nSTDERR %s\n", code, stdout.String(), stderr.String())
		}
		// The test binary, copied where the operator can run it.
		exe := filepath.Join(dir, "tandem.test")
		if _, err := os.Stat(exe); err != nil {
			bin, err := os.ReadFile(os.Args[0])
			if err != nil {
				t.Fatal(err)
			}
			write("tandem.test", string(bin), 0o755, -1)
		}
		cmd := exec.Command(exe, "-test.run=^TestAdminConfigUnreadableSecrets$", "-test.count=1")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TANDEM_TEST_ADMIN_CONFIG="+cfg, "HOME="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: operator, Gid: operator}}
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the operator's run: %v\n%s", err, b)
		}
		return string(b)
	}
	out := status(cfg)
	if !strings.Contains(out, "EXIT 0\n") || !strings.Contains(out, `{"site":"site1","role":"master"}`) {
		t.Errorf("tandem status -config F, F's secrets other than the admin token unreadable:\n%s", out)
	}

	// Its DSNs naming no file, the file loads with its admin token alone (config.LoadSecrets).
	plain := write("site1-plain.toml", secretsSiteTOML(siteSecrets{dataDir: "/d", key: key, users: users, tlsCert: rootCert, tlsKey: tlsKey,
		localDSN: "postgres://tandem@127.0.0.1:1/wire", peerDSN: "postgres://tandem@127.0.0.2:1/wire",
		adminListen: addr, token: token}), 0o644, -1)
	if out := status(plain); !strings.Contains(out, "EXIT 0\n") || !strings.Contains(out, `{"site":"site1","role":"master"}`) {
		t.Errorf("tandem status -config F, F's DSNs naming no file, its other secrets unreadable:\n%s", out)
	}

	// A file broken elsewhere still shows its own error.
	bad := write("bad.toml", strings.Replace(src, "[server]\n", "[server]\nhealth_interval = \"fast\"\n", 1), 0o644, -1)
	if out := status(bad); !strings.Contains(out, "EXIT 2\n") || !strings.Contains(out, "server.health_interval") {
		t.Errorf("a file broken elsewhere, its secrets unreadable:\n%s\nwant exit 2 and its error", out)
	}
}

// TestAdminClientNoProxy: an admin command, and a switchover a backup forwards, go straight to
// the member. With http.DefaultTransport a request to an admin address beyond loopback went
// through $HTTP_PROXY, bearer token included.
func TestAdminClientNoProxy(t *testing.T) {
	t.Parallel()
	c, _, err := adminFlags("status", []string{"-admin", "192.0.2.1:7180"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal("adminFlags failed")
	}
	tr, _ := c.http.Transport.(*http.Transport)
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport)
	}
	if tr.Proxy != nil {
		t.Errorf("the admin client's transport takes a proxy from the environment ($HTTP_PROXY): the request and its bearer token would go to it")
	}
}

// TestAdminDefaultAddressUnreachableSaysWhatToDo: an admin command given neither -config nor
// -admin asks 127.0.0.1:7180, where the member need not listen (the examples' sites listen on
// 7181 and 7182): "connection refused" alone left a newcomer to guess; the error says which
// address was asked and how to name the member. One given -admin is told nothing more.
func TestAdminDefaultAddressUnreachableSaysWhatToDo(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()

	c, _, err := adminFlags("status", nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal("adminFlags refused no flags")
	}
	c.base = "http://" + closed
	err = c.do(http.MethodGet, "/status", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:7180") || !strings.Contains(err.Error(), "-config FILE") || !strings.Contains(err.Error(), "-admin ADDR") {
		t.Errorf("without -config or -admin: %v; want the default address asked and -config / -admin named", err)
	}

	c, _, err = adminFlags("status", []string{"-admin", closed}, &bytes.Buffer{})
	if err != nil {
		t.Fatal("adminFlags refused -admin")
	}
	if err := c.do(http.MethodGet, "/status", io.Discard); err == nil || strings.Contains(err.Error(), "-config") {
		t.Errorf("with -admin: %v; want the error alone", err)
	}
}

// TestAdminFlagAddress: -admin takes host:port. One without a port was asked on port 80 ("dial
// tcp 127.0.0.1:80: connect: connection refused", which names no flag), and a URL
// (http://127.0.0.1:7180) as the host "http" ("lookup http ... no such host"): such an address
// is refused at once (exit 2), naming the flag and what it takes.
func TestAdminFlagAddress(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1", "http://127.0.0.1:7180", "localhost", "[::1]"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"status", "-admin", addr}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-admin") || !strings.Contains(stderr.String(), "host:port") {
			t.Errorf("status -admin %s: exit %d, stderr %q; want exit 2 naming -admin and host:port", addr, code, stderr.String())
		}
	}
}

// TestAdminFlagPort: an -admin address whose port is no port number (a name, a sign, out of
// range, 0) is a usage error naming -admin (exit 2), as one without a port is: it went on to
// build the request's URL or dial, and failed with exit 1 and an error that named no flag.
func TestAdminFlagPort(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:abc", "localhost:http", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:+7180", "127.0.0.1: 80", "127.0.0.1:0"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"status", "-admin", addr}, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-admin") || !strings.Contains(stderr.String(), "host:port") {
			t.Errorf("status -admin %q: exit %d, stderr %q; want exit 2 naming -admin and host:port", addr, code, stderr.String())
		}
	}
}

// TestAdminFlagZone: -admin takes an IPv6 address with its zone as admin.listen and net.Listen
// take it ([fe80::1%eth0]:7180), and as a URL writes it ([fe80::1%25eth0]:7180, which reached
// the member before -admin was checked): both reach the member. The check refused both, "want
// host:port", of an address that is host:port.
func TestAdminFlagZone(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	for i, addr := range []string{"[::1%lo]:" + port, "[::1%25lo]:" + port} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"clear-split-brain", "-admin", addr}, &stdout, &stderr)
		if int(hits.Load()) != i+1 {
			t.Errorf("clear-split-brain -admin %s: exit %d, stderr %q; the member was not asked", addr, code, stderr.String())
			hits.Store(int32(i + 1))
		}
	}
}

// TestAdminConfigZone: an admin.listen with an IPv6 zone ([fe80::1%eth0]:7180, as net.Listen
// takes it) is reached by -config as by -admin: the address went into the request's URL as it
// stood, and the command failed with "invalid URL escape" before asking anyone.
func TestAdminConfigZone(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site1.toml")
	src := fmt.Sprintf("site = \"site1\"\ndata_dir = %q\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n[admin]\nlisten = \"[::1%%lo]:%s\"\n", dir, port)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"clear-split-brain", "-config", cfg}, &stdout, &stderr)
	if hits.Load() != 1 {
		t.Errorf("clear-split-brain -config with admin.listen [::1%%lo]:%s: exit %d, stderr %q; the member was not asked", port, code, stderr.String())
	}
}
