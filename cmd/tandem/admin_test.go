package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/proxy"
)

// TestPeerAdmin: where a backup forwards a switchover to the master's admin API. A wildcard
// admin address is reached at the master's gossip IP; a loopback one only when the master is
// on this host's loopback too (one machine), else the backup would ask itself.
func TestPeerAdmin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		admin, gossip, want, err string
	}{
		{"127.0.0.1:7180", "127.0.0.1:7946", "127.0.0.1:7180", ""},
		{"127.0.0.1:7180", "10.0.0.1:7946", "", "loopback"},
		{"127.0.0.1:7180", "", "", "loopback"},
		{"0.0.0.0:7180", "10.0.0.1:7946", "10.0.0.1:7180", ""},
		{"[::]:7180", "[2001:db8::1]:7946", "[2001:db8::1]:7180", ""},
		{"0.0.0.0:7180", "", "", "unknown"},
		{"10.0.0.1:7180", "10.0.0.9:7946", "10.0.0.1:7180", ""},
		{"admin.site1:7180", "10.0.0.1:7946", "admin.site1:7180", ""},
	} {
		got, err := peerAdmin(t.Context(), tc.admin, tc.gossip)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("peerAdmin(%q, %q) = %q, %v; want %q, error with %q", tc.admin, tc.gossip, got, err, tc.want, tc.err)
		}
	}
}

// TestPeerAdminLocalhost: a master's admin.listen of localhost (config takes it as loopback,
// needing no token) is refused on another host as a loopback IP is. It was forwarded as a host
// name, to this host's own localhost:7180, with this member's bearer token.
func TestPeerAdminLocalhost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		admin, gossip, want, err string
	}{
		{"localhost:7180", "10.0.0.2:7946", "", "loopback"},
		{"LocalHost.:7180", "10.0.0.2:7946", "", "loopback"},
		{"admin.localhost:7180", "10.0.0.2:7946", "", "loopback"},
		{"localhost:7180", "", "", "loopback"},
		{"localhost:7180", "127.0.0.1:7946", "localhost:7180", ""}, // both sites on one machine
	} {
		got, err := peerAdmin(t.Context(), tc.admin, tc.gossip)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("peerAdmin(%q, %q) = %q, %v; want %q, error with %q", tc.admin, tc.gossip, got, err, tc.want, tc.err)
		}
	}
}

// TestAdminRoleStarting: a member that has not decided yet (waiting at cold start until it sees
// its peer, or tandem promote -force) says so: tandem_role is 1 for role "starting", and /status
// gives that role, where they gave every role 0 and "".
func TestAdminRoleStarting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Join: []string{"127.0.0.1:1"}, Profile: config.ProfileFast, Failback: config.FailbackAuto},
	}
	logger := slog.New(slog.DiscardHandler)
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, start: time.Now()}
	if st := node.State(); st.Role != gossip.RoleStarting || !st.Cold {
		t.Fatalf("a node not run yet: role %q, cold %v; want starting, cold", st.Role, st.Cold)
	}
	h := s.adminHandler()

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:7180/metrics", nil))
	sum := 0
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "tandem_role{") {
			v, _ := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
			sum += v
		}
	}
	if !strings.Contains(rec.Body.String(), "tandem_role{role=\"starting\"} 1\n") || sum != 1 {
		t.Errorf("metrics: want tandem_role{role=\"starting\"} 1 and no other role at 1; got:\n%s", rec.Body.String())
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:7180/status", nil))
	var st struct {
		Role    string `json:"role"`
		Members []struct {
			Site, Role string
		} `json:"members"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Role != "starting" {
		t.Errorf("status role %q (%v), want \"starting\"; body:\n%s", st.Role, err, rec.Body.String())
	}
	// Its own entry among the members too (it read "").
	if len(st.Members) != 1 || st.Members[0].Role != "starting" {
		t.Errorf("status members %+v, want site1 starting", st.Members)
	}
	// Every field README lists is there, empty or false too: a script reads
	// .split_brain == 0, not a missing key.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"site", "kind", "role", "term", "record", "master", "reason", "decision", "role_changes", "cold", "split_brain", "members", "uptime"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("status has no %q; body:\n%s", k, rec.Body.String())
		}
	}
}

// TestAdminAuth: with a token, every path but /healthz needs "Authorization: Bearer TOKEN"; the
// scheme's name is case-insensitive (RFC 9110 §11.1), so a client that writes "bearer" is let in;
// a wrong or missing token is refused.
func TestAdminAuth(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.DiscardHandler)
	s := &sidecar{cfg: &config.Config{Admin: config.Admin{Token: "s3cret"}}, log: logger}
	h := s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, tc := range []struct {
		path, header string
		want         int
	}{
		{"/status", "Bearer s3cret", http.StatusOK},
		{"/status", "bearer s3cret", http.StatusOK},
		{"/status", "BEARER s3cret", http.StatusOK},
		{"/status", "Bearer wrong", http.StatusUnauthorized},
		{"/status", "Bearer s3cret2", http.StatusUnauthorized},
		{"/status", "Basic s3cret", http.StatusUnauthorized},
		{"/status", "s3cret", http.StatusUnauthorized},
		{"/status", "", http.StatusUnauthorized},
		{"/healthz", "", http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s with %q: %d, want %d", tc.path, tc.header, rec.Code, tc.want)
		}
	}
}

// TestAdminUnauthorizedChallenge: a 401 names the scheme it wants in WWW-Authenticate, which
// RFC 9110 §15.5.2 requires of every 401 (a client that follows it, as some HTTP libraries do,
// got none to follow).
func TestAdminUnauthorizedChallenge(t *testing.T) {
	t.Parallel()
	s := &sidecar{cfg: &config.Config{Admin: config.Admin{Token: "s3cret"}}, log: slog.New(slog.DiscardHandler)}
	h := s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, header := range []string{"", "Bearer wrong"} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("/metrics with %q: %d, WWW-Authenticate %q; want 401 with a Bearer challenge", header, rec.Code, rec.Header().Get("WWW-Authenticate"))
		}
	}
}

// TestAdminBrowserRefused: without a token the admin API trusts whoever reaches its loopback
// address; a web page in a browser on that host must not be able to drive it: a cross-site POST
// (promote -force, switchover, resync) is refused, and so is any request whose Host is a name a
// page could have rebound to 127.0.0.1 (DNS rebinding). The tandem commands still get through.
func TestAdminBrowserRefused(t *testing.T) {
	t.Parallel()
	h := tokenlessAdmin(t)
	for _, tc := range []struct {
		method, host string
		headers      map[string]string
		refused      bool
	}{
		{http.MethodPost, "127.0.0.1:7180", nil, false},
		{http.MethodGet, "127.0.0.1:7180", nil, false},
		{http.MethodPost, "localhost:7180", nil, false},
		{http.MethodPost, "[::1]:7180", nil, false},
		{http.MethodPost, "10.0.0.1:7180", nil, false}, // a peer forwarding a switchover to a wildcard listener
		{http.MethodPost, "127.0.0.1:7180", map[string]string{"Sec-Fetch-Site": "cross-site"}, true},
		{http.MethodPost, "127.0.0.1:7180", map[string]string{"Origin": "http://evil.example"}, true},
		{http.MethodPost, "evil.example:7180", map[string]string{"Origin": "http://evil.example:7180"}, true},
		{http.MethodGet, "evil.example:7180", nil, true},
		{http.MethodHead, "myhost:7180", nil, false}, // /healthz tells nothing: a monitor may use any name
		{http.MethodGet, ":7180", nil, false},        // tandem status -admin :7180: no name, no browser's
	} {
		path := "/promote?force=1" // refused by the handler itself (409): this member has no proxy
		switch tc.method {
		case http.MethodGet:
			path = "/status"
		case http.MethodHead:
			path = "/healthz"
		}
		req := httptest.NewRequest(tc.method, path, nil)
		req.Host = tc.host
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Code == http.StatusForbidden; got != tc.refused {
			t.Errorf("%s %s Host %s %v: %d %q, want refused (403) %v", tc.method, path, tc.host, tc.headers, rec.Code, rec.Body.String(), tc.refused)
		}
	}
}

// TestPromoteForceNotCurrent: after the master site is lost for good, an operator runs tandem
// promote -force on the other site. That site is not cold but not current either (the lost
// master went solo: its database holds commits this one lacks), and -force, which lifts only
// the cold-start wait, must not make it master (DESIGN §3 rule 2). The answer must say why it
// waits and that -force does not override it, where it said "nothing to force" alone.
func TestPromoteForceNotCurrent(t *testing.T) {
	t.Parallel()
	addr1, addr2 := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	site := func(name string, prio int, bind, join string, rec gossip.TermRecord, opts gossip.Options) (*gossip.Node, context.CancelFunc, chan error) {
		cfg := &config.Config{
			Kind: config.KindSite, Site: name, Priority: prio, DataDir: t.TempDir(),
			Gossip: config.Gossip{Bind: bind, Join: []string{join}, Profile: config.ProfileFast, Failback: config.FailbackAuto},
		}
		if err := gossip.NewFileStore(cfg.DataDir).Save(rec); err != nil {
			t.Fatal(err)
		}
		opts.Logger = logger
		n, err := gossip.New(cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- n.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		n.SetServerHealthy(true)
		return n, cancel, done
	}
	// site1 is master of term 5 and goes solo in its next term: the peer lacks its commits.
	n1, stop1, done1 := site("site1", 1, addr1, addr2, gossip.TermRecord{Term: 5, Master: "site1", PeerSynced: true},
		gossip.Options{BeforePromote: func(context.Context, uint64) (bool, error) { return false, nil }})
	n2, _, _ := site("site2", 2, addr2, addr1, gossip.TermRecord{Term: 5, Master: "site1", PeerSynced: true}, gossip.Options{})
	deadline := time.Now().Add(10 * time.Second)
	for st := n2.State(); st.Cold || !strings.Contains(st.Decision, "not current"); st = n2.State() {
		if time.Now().After(deadline) {
			t.Fatalf("site2 %s (cold %v): %q; want it not current behind site1's solo term (site1: %s of term %d)",
				st.Role, st.Cold, st.Decision, n1.State().Role, n1.State().Term)
		}
		time.Sleep(20 * time.Millisecond)
	}
	lostTerm := n1.State().Term
	stop1() // site1 lost
	<-done1
	done1 <- nil

	cfg2 := &config.Config{Kind: config.KindSite, Site: "site2"}
	s := &sidecar{cfg: cfg2, log: logger, node: n2, start: time.Now(), proxy: &proxy.Server{}}
	rec := httptest.NewRecorder()
	s.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/promote?force=1", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusConflict || !strings.Contains(body, "not current") || !strings.Contains(body, "-force does not override") {
		t.Errorf("promote -force on a site that is not current: %d %q; want 409 saying why it waits and that -force does not override it", rec.Code, body)
	}
	time.Sleep(500 * time.Millisecond)
	if st := n2.State(); st.Role == gossip.RoleMaster {
		t.Fatalf("site2 became master of term %d without site1's solo commits", st.Term)
	}

	// site1 is lost for good: the operator accepts the loss of what it committed alone in its
	// term. Another term than the newest is refused; the newest one makes site2 master.
	promote := func(query string) (int, string) {
		rec := httptest.NewRecorder()
		s.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/promote?"+query, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := promote(fmt.Sprintf("accept_loss=%d", lostTerm-1)); code != http.StatusConflict || !strings.Contains(body, "not the newest term") {
		t.Errorf("accept_loss of an older term: %d %q; want 409 naming the newest term", code, body)
	}
	if code, body := promote("accept_loss=x"); code != http.StatusBadRequest {
		t.Errorf("accept_loss=x: %d %q; want 400", code, body)
	}
	time.Sleep(300 * time.Millisecond)
	if st := n2.State(); st.Role == gossip.RoleMaster {
		t.Fatalf("site2 became master of term %d after a refused accept_loss", st.Term)
	}
	if code, body := promote(fmt.Sprintf("accept_loss=%d", lostTerm)); code != http.StatusOK || !strings.Contains(body, "is accepted") {
		t.Fatalf("accept_loss of term %d: %d %q; want 200", lostTerm, code, body)
	}
	deadline = time.Now().Add(10 * time.Second)
	for st := n2.State(); st.Role != gossip.RoleMaster || st.Term <= lostTerm; st = n2.State() {
		if time.Now().After(deadline) {
			t.Fatalf("site2 after accept_loss of term %d: %s of term %d (%q); want master of a newer term", lostTerm, st.Role, st.Term, st.Decision)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := promote(fmt.Sprintf("accept_loss=%d", lostTerm)); code != http.StatusConflict || !strings.Contains(body, "master of term") {
		t.Errorf("accept_loss on the master: %d %q; want 409", code, body)
	}
}

// TestAdminNoHostHeader: an HTTP/1.0 request without a Host header — a load balancer's health
// check of /master or /backup (HAProxy's httpchk sends one so by default) on the member's host
// — is served without a token: the DNS-rebinding guard refuses a name in Host, and a browser,
// whose requests it keeps out, always sends one. It was refused (403) as if Host were a name.
func TestAdminNoHostHeader(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(tokenlessAdmin(t))
	defer srv.Close()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "GET /master HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Not master yet (starting): 503.
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /master HTTP/1.0 without Host: %s %q, want 503 (not master)", resp.Status, body)
	}
}

// tokenlessAdmin is the admin API of a site without admin.token_file, whose node is not
// running.
func tokenlessAdmin(t *testing.T) http.Handler {
	t.Helper()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: t.TempDir(), Admin: config.Admin{Listen: "127.0.0.1:7180"},
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Join: []string{"127.0.0.1:1"}, Profile: config.ProfileFast, Failback: config.FailbackAuto},
	}
	logger := slog.New(slog.DiscardHandler)
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return (&sidecar{cfg: cfg, log: logger, node: node, start: time.Now()}).adminHandler()
}

// TestPromoteForceSaysWhatItWaitsFor: README: with gossip.witness = true a site alone at cold
// start stays backup after tandem promote -force, "and tandem promote -force prints what it
// still waits for" (no majority). Right after the force the node is backup with no decision yet
// for a moment, which the answer took for "waits for nothing": it said only that the wait was
// lifted, and the operator believed the site would take control.
func TestPromoteForceSaysWhatItWaitsFor(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Join: []string{freeGossipAddr(t), freeGossipAddr(t)},
			Profile: config.ProfileFast, Failback: config.FailbackAuto, Witness: true, FenceDelay: config.DefaultFenceDelay(config.ProfileFast)},
	}
	logger := slog.New(slog.DiscardHandler)
	node := runNode(t, cfg, logger)
	deadline := time.Now().Add(10 * time.Second)
	for st := node.State(); !strings.HasPrefix(st.Decision, "cold start"); st = node.State() {
		if time.Now().After(deadline) {
			t.Fatalf("site1 alone: %s, %q; want waiting at cold start", st.Role, st.Decision)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, start: time.Now(), proxy: &proxy.Server{}}
	rec := httptest.NewRecorder()
	s.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/promote?force=1", nil))
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, "still waits") || !strings.Contains(body, "no majority") {
		t.Errorf("promote -force on a site alone with a witness configured: %d %q (now %s, %q); want it to say it still waits for a majority",
			rec.Code, body, node.State().Role, node.State().Decision)
	}
}

// TestSwitchoverForwardHungMaster: tandem switchover asked of the backup is forwarded to the
// master's admin API. When that API accepts and never answers (the master's sidecar is
// frozen), the command must say so: the backup's forward waited as long as the command's own
// request (10 s each), and the command gave up first with "Client.Timeout exceeded", which
// names neither the master nor the forward.
func TestSwitchoverForwardHungMaster(t *testing.T) {
	t.Parallel()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	addr1, addr2 := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	site := func(name string, prio int, bind, join, admin string) (*config.Config, *gossip.Node) {
		return forwardSite(t, logger, name, prio, bind, join, admin)
	}
	site("site1", 1, addr1, addr2, hung.Addr().String())
	cfg2, n2 := site("site2", 2, addr2, addr1, "127.0.0.1:7180")
	awaitBackupOf(t, n2, "site1")
	s2 := &sidecar{cfg: cfg2, log: logger, node: n2, start: time.Now(), proxy: &proxy.Server{}}
	srv := httptest.NewServer(s2.adminHandler())
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run([]string{"switchover", "-admin", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr)
	t.Logf("exit %d after %v: %s", code, time.Since(start).Round(time.Millisecond), stderr.String())
	if code != 1 || !strings.Contains(stderr.String(), "forward") || !strings.Contains(stderr.String(), "site1") {
		t.Errorf("switchover through the backup to a hung master: exit %d, stderr %q; want exit 1 saying the forward to site1 failed", code, stderr.String())
	}
}

// forwardSite starts the gossip node of a switchover-forwarding test's site: name, of priority
// prio, bound at bind and joining join, with admin as its admin address, from a term record of
// term 5 naming site1 master; it stops with the test.
func forwardSite(t *testing.T, logger *slog.Logger, name string, prio int, bind, join, admin string) (*config.Config, *gossip.Node) {
	t.Helper()
	cfg := &config.Config{
		Kind: config.KindSite, Site: name, Priority: prio, DataDir: t.TempDir(), Admin: config.Admin{Listen: admin},
		Gossip: config.Gossip{Bind: bind, Join: []string{join}, Profile: config.ProfileFast, Failback: config.FailbackAuto},
	}
	if err := gossip.NewFileStore(cfg.DataDir).Save(gossip.TermRecord{Term: 5, Master: "site1", PeerSynced: true}); err != nil {
		t.Fatal(err)
	}
	return cfg, runNode(t, cfg, logger)
}

// runNode runs cfg's gossip node, its server healthy, until the test ends.
func runNode(t *testing.T, cfg *config.Config, logger *slog.Logger) *gossip.Node {
	t.Helper()
	n, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	n.SetServerHealthy(true)
	return n
}

// awaitBackupOf waits up to 10 s for n to be a backup of master.
func awaitBackupOf(t *testing.T, n *gossip.Node, master string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for st := n.State(); st.Role != gossip.RoleBackup || st.Master != master; st = n.State() {
		if time.Now().After(deadline) {
			t.Fatalf("node: %s, master %q; want backup of %s", st.Role, st.Master, master)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminProxyIdleCounted: the proxy's count of connections closed by idle_timeout
// (proxy.Stats.Idle) is in /status (proxy.idle) and /metrics
// (tandem_proxy_connections_idle_total), as its other counters are; it was in neither.
func TestAdminProxyIdleCounted(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Profile: config.ProfileFast, Failback: config.FailbackAuto},
	}
	logger := slog.New(slog.DiscardHandler)
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, start: time.Now(), proxy: &proxy.Server{}}
	h := s.adminHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:7180/status", nil))
	var st struct {
		Proxy map[string]json.RawMessage `json:"proxy"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Proxy["idle"]; !ok {
		t.Errorf("status's proxy has no \"idle\"; body:\n%s", rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:7180/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\ntandem_proxy_connections_idle_total 0\n") {
		t.Errorf("metrics have no tandem_proxy_connections_idle_total 0:\n%s", rec.Body.String())
	}
}
