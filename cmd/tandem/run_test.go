package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/txshim"
)

// hookSidecar is site1's sidecar with only what its hooks need: the hook runner (not started)
// and a gossip node (not running), its data in dir.
func hookSidecar(t *testing.T, dir string, h config.Hooks) *sidecar {
	t.Helper()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Profile: config.ProfileFast, Failback: config.FailbackAuto},
		Hooks:  h,
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return &sidecar{cfg: cfg, log: logger, node: node, hooks: hooks{cfg: cfg.Hooks, site: cfg.Site, log: logger},
		hookJobs: make(chan hookJob, hookQueue)}
}

// TestHookPromoteAfterItsDemote: an on_promote still queued behind a running hook when its term
// is released must not run after that term's on_demote (which the release runs itself): the
// server would be left believing it is master. Here the hook runner is busy (not started)
// while site1 is promoted to term 2 and releases it at once.
func TestHookPromoteAfterItsDemote(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	hook := func(what string) []string {
		return []string{"sh", "-c", "echo " + what + " $TANDEM_TERM >> " + out}
	}
	s := hookSidecar(t, dir, config.Hooks{OnPromote: hook("promote"), OnDemote: hook("demote"), Timeout: 10 * time.Second})

	// followRoles saw master of term 2; the runner has not got to it yet.
	s.queueHook(hookJob{role: gossip.RoleMaster, term: 2})
	// The node releases term 2: beforeRelease runs on_demote itself.
	s.beforeRelease(t.Context(), 2)
	// The runner catches up (one round of runHooks).
	s.runHook(t.Context(), <-s.hookJobs)

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("hooks ran: %q", lines)
	if last := lines[len(lines)-1]; last != "demote 2" {
		t.Fatalf("the last hook that ran is %q, after term 2 was released: want \"demote 2\"", last)
	}
}

// TestReleaseWhileHookRuns: a release while the hook runner is busy (an earlier term's
// on_demote) and its term's on_promote waits in the queue must neither run that on_promote
// nor wait for it: whichever of the two takes the runner first, the release's on_demote comes
// without the on_promote's run (here 3 s) before it — that delay held back the other site's
// takeover.
func TestReleaseWhileHookRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	s := hookSidecar(t, dir, config.Hooks{
		OnPromote: []string{"sh", "-c", "echo promote-start $TANDEM_TERM >> " + out + "; sleep 3; echo promote-end $TANDEM_TERM >> " + out},
		OnDemote:  []string{"sh", "-c", "echo demote $TANDEM_TERM >> " + out + "; [ $TANDEM_TERM != 1 ] || sleep 1"},
		Timeout:   10 * time.Second,
	})
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { s.runHooks(ctx); close(ran) }()
	defer func() { cancel(); <-ran }()

	s.queueHook(hookJob{demote: true, role: gossip.RoleBackup, term: 1}) // fenced: on_demote of term 1 runs 1 s
	s.queueHook(hookJob{role: gossip.RoleMaster, term: 2})               // master of term 2, queued behind it
	hooksRan := func() []string {
		b, _ := os.ReadFile(out)
		return strings.Fields(string(b))
	}
	for deadline := time.Now().Add(5 * time.Second); len(hooksRan()) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	s.beforeRelease(t.Context(), 2) // term 2 released while on_demote of term 1 runs
	took := time.Since(start)
	got := strings.Join(hooksRan(), " ")
	t.Logf("release took %v; hooks ran: %s", took.Round(time.Millisecond), got)
	if strings.Contains(got, "promote-end") {
		t.Fatalf("on_promote of the released term ran to its end: %s", got)
	}
	if took > 2500*time.Millisecond {
		t.Fatalf("the release took %v: it waited for the released term's on_promote", took)
	}
	if !strings.HasSuffix(got, "demote 2") {
		t.Fatalf("hooks ran: %s, want the release's on_demote of term 2 last", got)
	}
}

// TestDemoteAtStart: a site's sidecar killed while master (kill -9) ran no on_demote, and the
// server beside it may still believe it is master. The next run, which starts as backup, runs
// on_demote once for that term; a run after that (or after a stop that ran it) does not again.
func TestDemoteAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	hook := func(what string) []string {
		return []string{"sh", "-c", "echo " + what + " $TANDEM_TERM $TANDEM_ROLE >> " + out}
	}
	// What the killed run left: master of term 5.
	if err := gossip.NewFileStore(dir).Save(gossip.TermRecord{Term: 5, Master: "site1", PeerSynced: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		// A server nothing listens for: the site stays backup.
		Server: config.Server{Health: config.HealthTCP, HealthInterval: 100 * time.Millisecond, HealthTimeout: 100 * time.Millisecond,
			HealthFailures: 1, Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Proxy: config.Proxy{ConnectTimeout: time.Second, MaxConns: 10},
		Admin: config.Admin{Listen: "127.0.0.1:0"},
		Hooks: config.Hooks{OnPromote: hook("promote"), OnDemote: hook("demote"), Timeout: 10 * time.Second},
	}
	hooksRan := func() string {
		b, err := os.ReadFile(out)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	// runFor runs the sidecar until cond holds or limit passes, then stops it.
	runFor := func(cond func() bool, limit time.Duration) {
		t.Helper()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
		deadline := time.Now().Add(limit)
		for !cond() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Until the hook ran and the sidecar recorded that it ended: stopped between the two (the
	// hook's line written, its process not yet reaped), the next start runs it again, rightly.
	runFor(func() bool {
		term, err := loadTermFile(dir, demotedFile)
		return hooksRan() != "" && err == nil && term == 5
	}, 10*time.Second)
	if got := hooksRan(); got != "demote 5 backup" {
		t.Fatalf("hooks run at the start after a kill as master of term 5: %q, want on_demote of term 5", got)
	}
	runFor(func() bool { return false }, 2*time.Second) // ample for a hook queued at start
	if got := hooksRan(); got != "demote 5 backup" {
		t.Fatalf("hooks run after a second start: %q, want on_demote of term 5 once", got)
	}
}

// TestServeStartupFailureFreesPorts: a start-up that fails — at the admin listen (its address
// taken; bound first, before the node publishes it: TestAdminAnyPortPublished), or at gossip.New
// (a corrupt split-brain mark) after the shim's and the proxy's listeners were bound — returns
// its error with every port free again, not held until the process exits.
func TestServeStartupFailureFreesPorts(t *testing.T) {
	t.Parallel()
	c, _, _ := installedSite2(t)
	dsn := c.DSN(c.Database())
	freePort := func() string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A gossip port taken (another member's, a second sidecar's): bound after the admin API
	// and the shim listen (node.Bind), before the proxy does. A proxy port taken: after the
	// gossip port was bound, which the failed start lets go of too.
	gossipTaken := taken.Addr().String()
	adminPort := freePort()
	for _, tc := range []struct {
		name   string
		admin  string
		gossip string
		proxy  string
		ready  func(dir string)
		want   []string
	}{
		{"admin", taken.Addr().String(), "", "", func(string) {}, []string{"admin listen"}},
		{"gossip", "127.0.0.1:0", "", "", func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, gossip.SplitBrainFile), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{gossip.SplitBrainFile}},
		{"gossip port taken", adminPort, gossipTaken, "", func(string) {}, []string{"gossip.bind", gossipTaken}},
		{"proxy port taken", adminPort, "", taken.Addr().String(), func(string) {}, []string{taken.Addr().String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.ready(dir)
			shimAddr, proxyAddr := freePort(), freePort()
			if tc.proxy != "" {
				proxyAddr = tc.proxy
			}
			bind := tc.gossip
			if bind == "" {
				bind = freeGossipAddr(t)
			}
			cfg := &config.Config{Kind: config.KindSite, Site: "site2", Priority: 1, DataDir: dir,
				Gossip: config.Gossip{Bind: bind, Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
				Server: config.Server{Health: config.HealthTCP, HealthInterval: 100 * time.Millisecond, HealthTimeout: 100 * time.Millisecond,
					HealthFailures: 1, Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
				Proxy: config.Proxy{Listeners: []config.Listener{{Endpoint: "operators", Listen: proxyAddr}}, ConnectTimeout: time.Second, MaxConns: 10},
				Admin: config.Admin{Listen: tc.admin},
				TxShim: &config.TxShim{Listen: shimAddr, LocalDSN: dsn, PeerDSN: dsn, PeerDown: config.PeerDownContinue,
					MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second}}
			done := make(chan error, 1)
			go func() { done <- serve(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("serve did not return: a start-up that failed went on running")
			}
			if err == nil {
				t.Fatalf("serve: no error, want one naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("serve: %v, want an error naming %s", err, w)
				}
			}
			t.Logf("serve: %v", err)
			ports := map[string]string{"shim": shimAddr}
			if tc.proxy == "" {
				ports["proxy"] = proxyAddr
			}
			if tc.admin != taken.Addr().String() && tc.admin != "127.0.0.1:0" {
				ports["admin"] = tc.admin
			}
			if tc.gossip == "" {
				ports["gossip"] = bind
				u, err := net.ListenPacket("udp", bind)
				if err != nil {
					t.Errorf("the gossip's UDP port %s is still bound after the failed start-up: %v", bind, err)
				} else {
					u.Close()
				}
			}
			for name, addr := range ports {
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("the %s's port %s is still bound after the failed start-up: %v", name, addr, err)
					continue
				}
				l.Close()
			}
		})
	}
}

// TestServeRefusesUnreadSecrets: a configuration loaded without some of its secret files (the
// database commands' config.LoadSecrets) lacks what they hold — without the users file the
// shim would trust every client — and no member runs on it.
func TestServeRefusesUnreadSecrets(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Kind: config.KindSite, Site: "site1", DataDir: t.TempDir(), Unread: config.SecretUsers}
	if err := serve(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "secret files") {
		t.Fatalf("serve on a configuration loaded without its users file: %v, want a refusal", err)
	}
}

// TestDemoteStoppedAfterAdoption: a master that finds a newer term of the other site (its
// process was paused, its link cut) adopts that site's record and then runs on_demote; tandem
// stopped while that hook runs (systemctl restart) ends it before its end, and the log says the
// next start runs it again. That start found the adopted record, which names the other site,
// and ran nothing: the server beside this site, which on_promote made master, still believed
// it was.
func TestDemoteStoppedAfterAdoption(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	h := config.Hooks{
		OnPromote: []string{"sh", "-c", "echo promote $TANDEM_TERM >> " + out},
		OnDemote:  []string{"sh", "-c", "echo demote-start $TANDEM_TERM >> " + out + "; sleep 5; echo demote-end $TANDEM_TERM >> " + out},
		Timeout:   10 * time.Second,
	}
	hooksRan := func() string {
		b, _ := os.ReadFile(out)
		return strings.Join(strings.Fields(string(b)), " ")
	}
	s := hookSidecar(t, dir, h)
	store := gossip.NewFileStore(dir)
	// Master of term 1: its record, and on_promote.
	if err := store.Save(gossip.TermRecord{Term: 1, Master: "site1", PeerSynced: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	s.queueHook(hookJob{role: gossip.RoleMaster, term: 1})
	s.runHook(t.Context(), <-s.hookJobs)
	// site2 took term 2 meanwhile: site1 adopts its record (gossip saves it first), then
	// followRoles queues on_demote of term 1.
	if err := store.Save(gossip.TermRecord{Term: 2, Master: "site2", PeerSynced: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	s.queueHook(hookJob{demote: true, role: gossip.RoleBackup, term: 1})
	ctx, stop := context.WithCancel(t.Context())
	ran := make(chan struct{})
	go func() { s.runHooks(ctx); close(ran) }()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(hooksRan(), "demote-start 1") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stop() // SIGTERM while on_demote of term 1 runs
	<-ran
	if got := hooksRan(); got != "promote 1 demote-start 1" {
		t.Fatalf("hooks ran before the stop: %q", got)
	}

	// The next start, as serve does it.
	s2 := hookSidecar(t, dir, h)
	last, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.demoteAtStart(last); err != nil {
		t.Fatal(err)
	}
	select {
	case j := <-s2.hookJobs:
		s2.runHook(t.Context(), j)
	default:
	}
	if got := hooksRan(); !strings.HasSuffix(got, "demote-end 1") {
		t.Fatalf("hooks ran: %q; on_demote of term 1 was stopped before its end and the next start did not run it again: the server still believes it is master", got)
	}
}

// TestReleaseTimeoutCoversOnDemote: a master stopped (SIGTERM) releases its term within
// releaseTimeout: the shim's drain, if any, then on_demote. The bound must leave on_demote its
// whole hooks.timeout, and the moment a hook killed at its timeout takes to end: else an
// on_demote that runs long is killed by the stop before its own timeout (a hooks.timeout of
// 60 s cut at 30 s), and one that uses up its timeout ends with the stop's deadline, is taken
// for one tandem's stop cut short, not recorded as run (demoted.json), and runs again at the
// next start.
func TestReleaseTimeoutCoversOnDemote(t *testing.T) {
	t.Parallel()
	shim := &config.TxShim{CommitTimeout: config.DefaultCommitTimeout}
	for _, c := range []struct {
		name string
		shim *config.TxShim
		hook time.Duration
	}{
		{"no [txshim], default hooks.timeout", nil, config.DefaultHookTimeout},
		{"no [txshim], hooks.timeout 60s", nil, 60 * time.Second},
		{"[txshim], default hooks.timeout", shim, config.DefaultHookTimeout},
		{"[txshim], hooks.timeout 60s", shim, 60 * time.Second},
	} {
		cfg := &config.Config{TxShim: c.shim, Hooks: config.Hooks{Timeout: c.hook}}
		need := c.hook + hookWaitDelay
		if c.shim != nil {
			need += txshim.CommitWaitMax(c.shim.CommitTimeout) + drainMargin + txshim.DrainEnd + barrierReserve
		}
		if got := releaseTimeout(cfg); got <= need {
			t.Errorf("%s: a release at stop is cut after %v; the drain and on_demote may take %v", c.name, got, need)
		}
	}
}

// TestDemoteAtStartCorruptStateFile: a site whose state.json cannot be read (cut short by a
// disk, an old copy restored badly) starts all the same with [txshim] — its database holds the
// term record — but the start skipped on_demote for the term whose on_promote ran
// (promoted.json) and whose on_demote did not come to its end: the server beside it went on
// believing it was master.
func TestDemoteAtStartCorruptStateFile(t *testing.T) {
	t.Parallel()
	c, _, _ := installedSite(t, "site1")
	dsn := c.DSN(c.Database())
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	if err := os.WriteFile(filepath.Join(dir, gossip.StateFile), []byte(`{"term":5,"mas`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveTermFile(dir, promotedFile, 5); err != nil {
		t.Fatal(err)
	}
	cfg := demoteHookSite(t, dir, dsn, out)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	ran := func() bool {
		term, err := loadTermFile(dir, demotedFile)
		return err == nil && term == 5
	}
	for deadline := time.Now().Add(5 * time.Second); !ran() && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	if got := strings.TrimSpace(string(b)); got != "demote 5" {
		t.Fatalf("hooks run at a start with an unreadable state file after on_promote of term 5: %q, want on_demote of term 5", got)
	}
}

// TestDemoteAtStartRefusedStart: a site killed while master (on_promote of term 7 ran, its
// on_demote did not), whose database was then restored from an earlier backup, does not start
// (recordStore.Load: its state file says it was master of term 7, its database holds term 3)
// until the operator has let the other site take control. The refused start had queued
// on_demote for term 7 but returned before the hook runner started: none ran, and the server
// beside the site went on believing it was master while the other site took control.
func TestDemoteAtStartRefusedStart(t *testing.T) {
	t.Parallel()
	c, db, _ := installedSite(t, "site1")
	dsn := c.DSN(c.Database())
	if err := txshim.WriteTermRecord(t.Context(), db, 3, "site1", true); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	if err := gossip.NewFileStore(dir).Save(gossip.TermRecord{Term: 7, Master: "site1", PeerSynced: true, Seq: 3}); err != nil {
		t.Fatal(err)
	}
	if err := saveTermFile(dir, promotedFile, 7); err != nil {
		t.Fatal(err)
	}
	cfg := demoteHookSite(t, dir, dsn, out)
	err := serve(t.Context(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "master of term 7") {
		t.Fatalf("serve: %v; want the refusal of a database that lost this site's term 7", err)
	}
	b, _ := os.ReadFile(out)
	if got := strings.TrimSpace(string(b)); got != "demote 7" {
		t.Fatalf("hooks run at a refused start after on_promote of term 7: %q, want on_demote of term 7", got)
	}
	if term, err := loadTermFile(dir, demotedFile); err != nil || term != 7 {
		t.Errorf("demoted.json: term %d, %v; want 7", term, err)
	}
}

// demoteHookSite is the configuration of site1 with [txshim] on database dsn, data_dir dir, and
// an on_demote hook that appends "demote TERM" to out; its server is one nothing listens for,
// so the site stays backup.
func demoteHookSite(t *testing.T, dir, dsn, out string) *config.Config {
	return &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		Server: config.Server{Health: config.HealthTCP, HealthInterval: 100 * time.Millisecond, HealthTimeout: 100 * time.Millisecond,
			HealthFailures: 1, Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Proxy: config.Proxy{ConnectTimeout: time.Second, MaxConns: 10},
		Admin: config.Admin{Listen: "127.0.0.1:0"},
		Hooks: config.Hooks{OnDemote: []string{"sh", "-c", "echo demote $TANDEM_TERM >> " + out}, Timeout: 10 * time.Second},
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: dsn, PeerDSN: dsn, PeerDown: config.PeerDownContinue,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: time.Second},
	}
}

// TestStartRefusesCorruptPromotedFile: promoted.json is the one record that on_promote ran for
// a term whose on_demote may be owed — when the term record names the other site (adopted
// while this site was master) it is the only one. Unreadable (a disk's fault, an edit: it is
// replaced atomically, so no crash leaves it half written), it was warned about and the site
// started without running on_demote: the server beside it could go on believing it is master
// while the other site takes control. As a corrupt state.json, vote.json or split-brain.json,
// it stops the start, naming the file and what to check, before anything listens or runs.
func TestStartRefusesCorruptPromotedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	if err := gossip.NewFileStore(dir).Save(gossip.TermRecord{Term: 6, Master: "site2", PeerSynced: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, promotedFile), []byte(`{"term":5`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		Server: config.Server{Health: config.HealthTCP, HealthInterval: 100 * time.Millisecond, HealthTimeout: 100 * time.Millisecond,
			HealthFailures: 1, Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Proxy: config.Proxy{ConnectTimeout: time.Second, MaxConns: 10},
		Admin: config.Admin{Listen: "127.0.0.1:0"},
		Hooks: config.Hooks{OnDemote: []string{"sh", "-c", "echo demote $TANDEM_TERM >> " + out}, Timeout: 10 * time.Second},
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(3 * time.Second):
		cancel()
		err = <-done
		t.Fatalf("serve ran on an unreadable %s (stopped: %v); want a refused start", promotedFile, err)
	}
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, promotedFile)) || !strings.Contains(err.Error(), "on_demote") {
		t.Fatalf("serve: %v; want a refusal naming %s and the on_demote it may owe", err, filepath.Join(dir, promotedFile))
	}
	t.Logf("serve: %v", err)
}

// TestStartGossipPortTakenServesNothing: gossip binds its port in node.Run, which serve started
// beside the admin API, the proxy, the health checks and the hook runner: a member whose
// gossip port was taken (a second sidecar started by mistake on this host, on the running
// master's data_dir) logged "tandem started", served for a moment, and its hook runner could
// take the on_demote its start owed for the running master's term (promoted.json) — demoting
// the server of the master still running. The port is bound before any of them starts: the
// start fails with nothing run.
func TestStartGossipPortTakenServesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	// The running master's: master of term 5, its on_promote run.
	if err := gossip.NewFileStore(dir).Save(gossip.TermRecord{Term: 5, Master: "site1", PeerSynced: true, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if err := saveTermFile(dir, promotedFile, 5); err != nil {
		t.Fatal(err)
	}
	taken, err := net.ListenPacket("udp", "127.0.0.1:0") // memberlist binds TCP first, then UDP
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: taken.LocalAddr().String(), Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		Server: config.Server{Health: config.HealthTCP, HealthInterval: 100 * time.Millisecond, HealthTimeout: 100 * time.Millisecond,
			HealthFailures: 1, Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:1"}}},
		Proxy: config.Proxy{ConnectTimeout: time.Second, MaxConns: 10},
		Admin: config.Admin{Listen: "127.0.0.1:0"},
		Hooks: config.Hooks{OnDemote: []string{"sh", "-c", "echo demote $TANDEM_TERM >> " + out}, Timeout: 10 * time.Second},
	}
	var logs syncBuffer
	err = serve(t.Context(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil || !strings.Contains(err.Error(), "gossip.bind") {
		t.Fatalf("serve: %v; want the gossip port's error", err)
	}
	time.Sleep(500 * time.Millisecond) // a hook started before serve returned has written by now
	if b, _ := os.ReadFile(out); len(b) != 0 {
		t.Errorf("hooks run by a start whose gossip port was taken: %q; want none", b)
	}
	if strings.Contains(logs.String(), "tandem started") {
		t.Errorf("a start whose gossip port was taken logged that it started:\n%s", logs.String())
	}
	// demoteAtStart queued the on_demote owed: the log must not say it runs, which it never did.
	if strings.Contains(logs.String(), "running it now") {
		t.Errorf("a start that failed before any hook ran logged that on_demote runs now:\n%s", logs.String())
	}
}

// startedSite starts serve on a site of its own in dir, gossip on bind, and returns its logs
// once it logged "tandem started"; serve is stopped at the test's end.
func startedSite(t *testing.T, dir, bind string) *syncBuffer {
	t.Helper()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: bind, Profile: config.ProfileFast, Failback: config.FailbackAuto, FailbackDelay: time.Second},
		Server: config.Server{Health: config.HealthTCP, HealthInterval: 100 * time.Millisecond, HealthTimeout: 100 * time.Millisecond,
			HealthFailures: 1, Endpoints: []config.Endpoint{{Name: "operators", Address: "127.0.0.1:0"}}},
		Proxy: config.Proxy{ConnectTimeout: time.Second, MaxConns: 10},
		Admin: config.Admin{Listen: "127.0.0.1:0"},
		Hooks: config.Hooks{Timeout: 10 * time.Second},
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "tandem started") {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve stopped before it started: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"tandem started\" within 10s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return logs
}

// TestStartLogsBoundGossipPort: with gossip.bind on port 0 (any free port), "tandem started"
// said gossip=127.0.0.1:0, as configured, not the port bound, which the other members must
// be given.
func TestStartLogsBoundGossipPort(t *testing.T) {
	t.Parallel()
	logs := startedSite(t, t.TempDir(), "127.0.0.1:0")
	var line string
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, "tandem started") {
			line = l
		}
	}
	if strings.Contains(line, "gossip=127.0.0.1:0 ") || !strings.Contains(line, "gossip=127.0.0.1:") {
		t.Fatalf("started with gossip.bind 127.0.0.1:0: %q; want the port bound", line)
	}
}

// TestStartRemovesStaleTempFiles: WriteStateFile writes NAME.*.tmp in data_dir and renames it;
// a crash between the two left it there for good, as nothing removed them. A start removes
// the ones older than a write takes, and only those named as Tandem names them.
func TestStartRemovesStaleTempFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	stale := []string{gossip.StateFile + ".123456.tmp", gossip.VoteFile + ".42.tmp", gossip.SplitBrainFile + ".7.tmp", gossip.TakenOverFile + ".8.tmp",
		promotedFile + ".99.tmp", demotedFile + ".3141592653.tmp"}
	kept := []string{"notes.123.tmp", gossip.StateFile + ".abc.tmp", gossip.StateFile + ".12.tmp.bak", "x" + gossip.StateFile + ".12.tmp"}
	fresh := gossip.StateFile + ".555.tmp" // a write in progress, maybe another process's
	for _, n := range append(append(stale, kept...), fresh) {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if n != fresh {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	startedSite(t, dir, freeGossipAddr(t))
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s after the start: %v; want it removed", n, err)
		}
	}
	for _, n := range append(kept, fresh) {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s after the start: %v; want it kept", n, err)
		}
	}
}

// syncBuffer is a bytes.Buffer for a logger written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
