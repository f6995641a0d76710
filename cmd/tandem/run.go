package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/proxy"
)

// cmdRun runs a site's sidecar (or a witness) until SIGTERM or SIGINT.
func cmdRun(args []string, stderr io.Writer, witness bool) int {
	name := "run"
	kind := config.KindSite
	if witness {
		name, kind = "witness", config.KindWitness
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the member's TOML file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return usageExit(err)
	}
	if !argsAtMost(name, fs.Args(), 0, stderr) {
		return 2
	}
	if *path == "" {
		fmt.Fprintf(stderr, "usage: tandem %s -config FILE [-log-level LEVEL]\n", name)
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(stderr, "tandem: -log-level: %v\n", err)
		return 2
	}
	cfg, err := config.Load(*path, kind)
	if err != nil {
		// A file it cannot use: 2, as every other command exits on one (README), not the 1 of
		// a member that failed once started, which a supervisor may retry
		// (TestBadConfigExitsTwo).
		fmt.Fprintln(stderr, err)
		return 2
	}
	// What gossip.New refuses in the file (its endpoints too much for the metadata): a file it
	// cannot use too, as check-config says, not a start that failed (TestRunMetaTooLargeExitsTwo).
	// A state file of data_dir's it cannot read is left to the start, which fails on it.
	if msg, inFile := nodeCheck(cfg); inFile {
		fmt.Fprintln(stderr, msg)
		return 2
	}
	logger := slog.New(newOneKeyHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))).With("site", cfg.Site)
	slog.SetDefault(logger)

	// The log's reader may go away (`tandem run 2>&1 | tee log` with tee killed, a journald
	// restart): Go kills a program whose write to a broken pipe on fd 1 or 2 fails, with
	// SIGPIPE, unless it asks for that signal — and a master killed so hands over only after
	// suspicion. Asked for, a log line written there is lost and the sidecar goes on. Not
	// signal.Ignore: the hooks would inherit an ignored SIGPIPE. Never stopped: a goroutine
	// that logs after serve returned, before the process exits, must not die of it either.
	sigpipe := make(chan os.Signal, 1) // never read: the signal package does not wait for it
	signal.Notify(sigpipe, syscall.SIGPIPE)
	ctx, stop := stopSignals(logger, releaseTimeout(cfg))
	defer stop()
	if err := serve(ctx, cfg, logger); err != nil {
		logger.Error("tandem stopped", "err", err)
		return 1
	}
	logger.Info("tandem stopped")
	return 0
}

// stopSignals returns a context that ends at the first SIGTERM or SIGINT, the graceful stop,
// and stop, which lets go of the signals. A second one does not cut the stop short (a drain
// or an on_demote cut short is what it is there to avoid) but says in the log what the stop
// waits for, release being the bound of a master's handover (releaseTimeout). SIGHUP, which
// would kill the process at once (Go's default) — a log rotation script's `kill -HUP`, a
// stray `pkill -HUP` — is logged and ignored: there is no configuration to reload.
func stopSignals(logger *slog.Logger, release time.Duration) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case sig := <-term:
				if ctx.Err() != nil {
					logger.Warn("stopping already: a master hands over first (its drain and on_demote, within the release bound) and the member leaves the gossip cluster; SIGKILL stops at once, without them",
						"signal", sig.String(), "release_bound", release)
				}
				cancel()
			case <-hup:
				logger.Warn("SIGHUP ignored: tandem has no configuration to reload (restart it to read its file again); SIGTERM or SIGINT stops it")
			}
		}
	})
	return ctx, func() {
		signal.Stop(term)
		signal.Stop(hup)
		close(done)
		wg.Wait()
		cancel()
	}
}

// sidecar holds the parts of one running member.
type sidecar struct {
	cfg   *config.Config
	log   *slog.Logger
	node  *gossip.Node
	proxy *proxy.Server // nil for a witness
	db    *database     // nil without [txshim]
	hooks hooks
	start time.Time
	admin net.Listener
	// hookJobs feeds runHooks: role changes queue their hooks there, so a slow hook never
	// holds back the next change the proxy must see.
	hookJobs    chan hookJob
	hookMu      sync.Mutex // held while a hook runs: hooks never overlap and run in order
	routeMu     sync.Mutex // held while route tells the proxy and the shim
	mu          sync.Mutex
	demote      uint64             // last term whose on_demote hook ran (or is running)
	stopped     uint64             // last term whose demotion began (stopPromote): its on_promote must not start
	promoteStop context.CancelFunc // stops the on_promote hook running now, if any
	promoteTerm uint64             // the term of that on_promote
}

// hookJob is one on_promote or on_demote run.
type hookJob struct {
	demote bool
	role   gossip.Role
	term   uint64
}

// hookQueue bounds the role changes whose hooks wait behind a running one.
const hookQueue = 64

// serve wires gossip, health, proxy and admin together and runs them until
// ctx ends. Role changes flow one way: gossip → proxy and hooks (DESIGN §1).
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	if cfg.Unread != 0 {
		return errors.New("the configuration was loaded without some of its secret files: a member cannot run on it")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	if err := checkWritable(cfg.DataDir); err != nil {
		return err
	}
	// The admin API is bound before the node is made, which publishes its address for the
	// switchovers a backup forwards: with port 0 (any free port) that is the port bound, not
	// ":0", which no member reaches.
	admin, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	defer admin.Close() // a failed start-up lets go of it; once served, srv.Shutdown closed it
	if host, port, err := net.SplitHostPort(cfg.Admin.Listen); err == nil {
		if _, bound, err := net.SplitHostPort(admin.Addr().String()); err == nil && port != bound {
			c := *cfg
			c.Admin.Listen = net.JoinHostPort(host, bound)
			cfg = &c
		}
	}
	s := &sidecar{cfg: cfg, log: logger, start: time.Now(), hooks: hooks{cfg: cfg.Hooks, site: cfg.Site, log: logger},
		hookJobs: make(chan hookJob, hookQueue), admin: admin}
	// The term record as this site's last run left it, before anything of this run saves one.
	// Unreadable (with [txshim] the site starts on its database's record all the same), it
	// tells nothing, but promoted.json still tells of an on_promote whose on_demote is owed.
	last, err := gossip.NewFileStore(cfg.DataDir).Load()
	if err != nil {
		logger.Warn("cannot tell from the state file whether this site was master when its sidecar last stopped", "err", err)
	}
	if err := s.demoteAtStart(last); err != nil {
		return err
	}
	opts := gossip.Options{Logger: logger, BeforeRelease: s.beforeRelease}
	if path := os.Getenv(faultCutEnv); path != "" {
		opts.Cut = cutFromFile(path, logger)
	}
	if cfg.TxShim != nil {
		db, err := newDatabase(cfg, logger)
		if err != nil {
			return err
		}
		defer db.close()
		s.db = db
		db.records = newRecordStore(cfg.Site, db.local, gossip.NewFileStore(cfg.DataDir), db.log)
		opts.Store = db.records
		opts.BeforePromote = db.promote
		opts.CheckPromote = db.mayPromote
		opts.WentSolo = db.shim.WentSolo
	}
	opts.ReleaseTimeout = releaseTimeout(cfg)
	node, err := gossip.New(cfg, opts)
	if err != nil {
		if errors.As(err, new(lostTermError)) {
			// The site does not start until the operator has let the other site take control:
			// the on_demote owed (demoteAtStart) runs now, or the server beside this site goes
			// on believing it is master meanwhile. Not for any failed start: a second sidecar
			// started by mistake on a running master's data_dir would demote that master's server.
			s.runQueuedHooks(ctx)
		}
		return err
	}
	// The gossip port is bound before the proxy listens and anything serves or runs a hook:
	// taken (a second sidecar started on this host by mistake, on the running master's
	// data_dir), the start fails here, without the on_demote it queued for that master's term.
	if err := node.Bind(); err != nil {
		return err
	}
	defer node.Unbind() // a failed start-up lets go of it; once node.Run took it, nothing
	// A crash between a state file's write and its rename left its temporary file.
	removed, err := gossip.RemoveStaleTemps(cfg.DataDir, gossip.StateFile, gossip.VoteFile, gossip.SplitBrainFile, gossip.TakenOverFile, promotedFile, demotedFile)
	if len(removed) > 0 {
		logger.Info("removed the temporary files a crash left in data_dir", "files", removed)
	}
	if err != nil {
		logger.Warn("cannot remove the temporary files a crash may have left in data_dir", "dir", cfg.DataDir, "err", err)
	}
	s.node = node
	if s.db != nil {
		s.db.attach(node)
	}
	if cfg.Kind == config.KindSite {
		if s.proxy, err = proxy.New(cfg.Proxy, proxy.Options{Logger: logger}); err != nil {
			return err
		}
		if err := s.proxy.Start(); err != nil {
			return err
		}
		// Until the proxy serves, a failed start-up must let go of its ports (the shim's go
		// with db.close); once it serves, Serve closes them when runCtx ends and this does
		// nothing.
		defer s.proxy.Close()
	}
	// No ReadTimeout: it would cancel a request's context when it runs out (net/http's read
	// for a client gone), and a resync takes as long as the copy. A connection is held for a
	// bounded time all the same: its header within adminReadTimeout, idle between requests
	// for adminIdleTimeout, and a body, which no handler reads, not waited for (noBody); and
	// no more than adminMaxConns at once.
	srv := &http.Server{Handler: noBody(s.adminHandler()), ReadHeaderTimeout: adminReadTimeout, IdleTimeout: adminIdleTimeout}

	// The node outlives the proxy's accepting: on shutdown, or when a part fails, the proxy
	// takes no new connection and the health checks stop while the node hands over and leaves.
	// The connections made to this site's server stay through the handover's drain, as the
	// other site's proxy keeps them (proxy.Server.StopAccepting; the route beforeRelease sets
	// cuts them when the drain ends), and are closed once the node is done (proxyCtx). The
	// shim outlives the node: a handover finishes the commits in flight (DESIGN §3), through
	// the shim's sessions and its shipper.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	proxyCtx, stopProxy := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProxy()
	nodeCtx, stopNode := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNode()
	shimCtx, stopShim := context.WithCancel(context.WithoutCancel(ctx))
	defer stopShim()
	var wg sync.WaitGroup
	errc := make(chan error, 1) // the first failure; later ones are logged only
	fail := func(name string, err error) {
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, http.ErrServerClosed) {
			return
		}
		err = fmt.Errorf("%s: %w", name, err)
		select {
		case errc <- err:
		default:
			logger.Error("stopping", "err", err)
		}
	}
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(name, f())
		}()
	}
	nodeDone := make(chan struct{})
	go func() {
		defer close(nodeDone)
		fail("gossip", node.Run(nodeCtx))
	}()
	run("admin", func() error { return srv.Serve(newLimitListener(s.admin, adminMaxConns)) })
	run("roles", func() error { s.followRoles(nodeCtx); return nil })
	run("hooks", func() error { s.runHooks(nodeCtx); return nil })
	if s.db != nil {
		run("txshim", func() error { return s.db.run(shimCtx, cfg.Server.HealthInterval) })
	}
	if s.proxy != nil {
		run("proxy", func() error { return s.proxy.Serve(proxyCtx) })
		checker := gossip.NewChecker(cfg.Server, logger)
		run("health", func() error { return checker.Run(runCtx, node.SetServerHealthy) })
	}
	logger.Info("tandem started", "kind", kindName(cfg.Kind), "gossip", node.LocalAddr(), "admin", s.admin.Addr().String())

	var firstErr error
	select {
	case <-ctx.Done():
	case firstErr = <-errc:
	}
	logger.Info("shutting down")
	stopRun()
	if s.proxy != nil {
		s.proxy.StopAccepting(cfg.Site)
	}
	stopNode() // hand over if master, Leave, Shutdown (gossip.Node.Run)
	<-nodeDone
	stopProxy()
	stopShim()
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	wg.Wait()
	return firstErr
}

// checkWritable fails when dir takes no new file (a read-only filesystem, an immutable
// directory, its mode): a member that cannot save its term record runs without use — it never
// adopts the master's record, and its promotion fails — while it answers as a healthy backup.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data_dir %s takes no file: a member must save its term record there: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// releaseTimeout bounds a release at shutdown (gossip.Options.ReleaseTimeout, BeforeRelease).
// With [txshim] it drains the shim — as long as a commit may wait for the peer, then the end
// of what is still in flight and the barrier, within drainBound (database.drain): gossip's
// default 30 s would cut the drain short and let "released" go out while a commit may still
// say peer_synced = false, which the node then refuses. Then it runs on_demote, which must have its whole hooks.timeout and the moment
// a hook killed at its timeout takes to end (hookWaitDelay, and a margin): cut by this bound
// instead, it would be killed early (a hooks.timeout above 30 s), or taken for one tandem's
// stop cut short, not recorded as run, and run again at the next start.
func releaseTimeout(cfg *config.Config) time.Duration {
	hook := cfg.Hooks.Timeout + hookWaitDelay + time.Second
	if cfg.TxShim != nil {
		return drainBound(cfg.TxShim.CommitTimeout) + hook
	}
	return max(30*time.Second, hook)
}

func kindName(k config.Kind) string {
	if k == config.KindWitness {
		return "witness"
	}
	return "site"
}

// followRoles pushes every role change to the proxy and the shim at once, and queues the
// hooks (runHooks): a hook that takes its time must not keep the proxy on an old master. Once
// ctx ends (the node's stop begins) it queues no hook, but goes on routing the node's changes
// until the node is done (Changes closed): a master's release at its stop may end its
// drain's keep early (the majority lost), which its beforeRelease does not route.
func (s *sidecar) followRoles(ctx context.Context) {
	var last gossip.Role
	var lastTerm uint64
	for {
		select {
		case <-ctx.Done():
			for range s.node.Changes() {
				s.route()
			}
			return
		case st, ok := <-s.node.Changes():
			if !ok {
				return
			}
			s.route()
			if st.Role == last && st.Term == lastTerm {
				continue
			}
			switch {
			case st.Role == gossip.RoleMaster && (last != gossip.RoleMaster || st.Term != lastTerm):
				s.queueHook(hookJob{role: st.Role, term: st.Term})
			case last == gossip.RoleMaster && st.Role != gossip.RoleMaster && st.Releasing != lastTerm:
				// A release runs on_demote itself, after its drain (beforeRelease).
				s.queueHook(hookJob{demote: true, role: st.Role, term: lastTerm})
			}
			last, lastTerm = st.Role, st.Term
		}
	}
}

// route tells the proxy and the shim who is master now. It reads the node's state itself,
// under routeMu: a state followRoles took from Changes may be older than the one
// beforeRelease has routed meanwhile, and routed after it would point the proxy back at the
// releasing master.
func (s *sidecar) route() {
	s.routeMu.Lock()
	defer s.routeMu.Unlock()
	st := s.node.State()
	if s.proxy != nil {
		s.proxy.SetMaster(proxy.Target{Term: st.Term, Site: st.Master, Endpoints: st.MasterEndpoints, Draining: st.Draining})
	}
	if s.db != nil {
		s.db.setRole(st)
	}
}

func (s *sidecar) queueHook(j hookJob) {
	if j.demote {
		s.stopPromote(j.term)
	}
	select {
	case s.hookJobs <- j:
	default:
		s.log.Error("hook not run: too many role changes wait behind a running hook", "demote", j.demote, "term", j.term)
	}
}

// runHooks runs the queued hooks one after the other until ctx ends.
func (s *sidecar) runHooks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.hookJobs:
			s.runHook(ctx, j)
		}
	}
}

// runQueuedHooks runs the hooks queued now, for a start that ends before runHooks runs.
func (s *sidecar) runQueuedHooks(ctx context.Context) {
	for {
		select {
		case j := <-s.hookJobs:
			s.runHook(ctx, j)
		default:
			return
		}
	}
}

// runHook runs one hook, after any hook running now; on_demote runs once per term, and
// on_promote not at all once its term's on_demote ran (a release runs that itself, possibly
// ahead of the queued on_promote).
func (s *sidecar) runHook(ctx context.Context, j hookJob) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	if !j.demote {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s.mu.Lock()
		gone := s.demote >= j.term || s.stopped >= j.term
		s.promoteStop, s.promoteTerm = cancel, j.term
		s.mu.Unlock()
		if gone {
			s.log.Info("on_promote not run: its term was released already", "term", j.term)
			return
		}
		// From here on the server may believe it is master until an on_demote of this term
		// comes to its end, whatever term record this site holds then (demoteAtStart).
		if err := saveTermFile(s.cfg.DataDir, promotedFile, j.term); err != nil {
			s.log.Warn("cannot record that on_promote runs: a restart may not run on_demote for it", "term", j.term, "err", err)
		}
		s.hooks.run(ctx, "on_promote", s.cfg.Hooks.OnPromote, j.role, j.term)
		return
	}
	s.mu.Lock()
	ran := s.demote >= j.term
	if !ran {
		s.demote = j.term
	}
	s.mu.Unlock()
	if !ran {
		// Recorded once it came to its end (demoteAtStart): stopped by tandem's stop, it runs
		// again at the next start, as the server may still believe it is master.
		if !s.hooks.run(ctx, "on_demote", s.cfg.Hooks.OnDemote, j.role, j.term) {
			s.log.Warn("on_demote was stopped before its end: the next start runs it again", "term", j.term)
			return
		}
		if err := saveTermFile(s.cfg.DataDir, demotedFile, j.term); err != nil {
			s.log.Warn("cannot record that on_demote ran: a restart runs it again", "term", j.term, "err", err)
		}
	}
}

// demoteAtStart queues on_demote for the term this site was master of when its last run
// ended, or whose on_promote a run started, unless an on_demote of that term (or a later one)
// came to its end (demotedFile): a sidecar killed while master (kill -9, a crash, the host's
// power) ran none, nor did one stopped while its on_demote ran or waited — a master that found
// a newer term of the other site holds that site's record by then, which names no term of its
// own — and the server beside it may still believe it is master. This run starts as backup —
// nothing is routed to that server until it is promoted again, and on_promote runs then, after
// this on_demote.
//
// An unreadable promotedFile stops the start: it may be the only record of an on_promote
// whose on_demote is owed (the term record names the other site once this one adopted its
// term), and this run would not know to run it. An unreadable demotedFile does not: taken
// for none, an on_demote owed runs again, which is what the site's start does anyway.
func (s *sidecar) demoteAtStart(last gossip.TermRecord) error {
	demoted, err := loadTermFile(s.cfg.DataDir, demotedFile)
	if err != nil {
		s.log.Warn("cannot read which term's on_demote ran last", "err", err)
	}
	s.mu.Lock()
	s.demote = demoted
	s.mu.Unlock()
	var owed uint64
	if last.Master == s.cfg.Site {
		owed = last.Term
	}
	promoted, err := loadTermFile(s.cfg.DataDir, promotedFile)
	if err != nil {
		return fmt.Errorf("cannot read which term's on_promote ran last, so whether an on_demote is owed (the server beside this site may believe it is master): %w; "+
			"make sure it is not (run the on_demote hook by hand if it may be), then remove %s and start again",
			err, filepath.Join(s.cfg.DataDir, promotedFile))
	}
	if owed = max(owed, promoted); owed > demoted {
		s.log.Info("this site was master of a term when its sidecar last stopped, or on_promote ran for it, and on_demote did not come to its end for it: it is owed, and runs once this start is through (\"hook ran\" says when it did)",
			"term", owed)
		s.queueHook(hookJob{demote: true, role: gossip.RoleBackup, term: owed})
	}
	return nil
}

// demotedFile keeps, in data_dir, the last term whose on_demote ran (demoteAtStart);
// promotedFile the last term whose on_promote started.
const (
	demotedFile  = "demoted.json"
	promotedFile = "promoted.json"
)

// loadTermFile reads a term demotedFile or promotedFile keeps; 0 when there is none.
func loadTermFile(dir, name string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var m struct {
		Term uint64 `json:"term"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return 0, fmt.Errorf("%s: %w", filepath.Join(dir, name), err)
	}
	return m.Term, nil
}

// saveTermFile replaces demotedFile or promotedFile durably.
func saveTermFile(dir, name string, term uint64) error {
	return gossip.WriteStateFile(dir, name, fmt.Appendf(nil, "{\"term\":%d}", term))
}

// stopPromote ends the on_promote hook of term, or of an earlier one, running now, and keeps
// one still queued from starting (runHook): the role it announced is gone, and the demotion's
// on_demote must not wait for it — a queued on_promote that took the hook runner before the
// demotion's on_demote would otherwise run to its end (or its timeout) first.
func (s *sidecar) stopPromote(term uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = max(s.stopped, term)
	if s.promoteStop != nil && s.promoteTerm <= term {
		s.promoteStop()
	}
}

// beforeRelease runs before the node publishes that it released term: the proxy routes no
// new connection to this site's server from now on (followRoles may be a step behind), and
// keeps those made before, whose requests may be being served; an on_promote hook still
// running is stopped; the shim refuses new commits and finishes those in flight (bounded), so
// that the next master starts after them; then the drain ends — the proxies, here and on the
// other site (gossip), cut the connections to this site's server — and on_demote runs,
// bounded by its timeout.
func (s *sidecar) beforeRelease(ctx context.Context, term uint64) {
	s.route()
	s.stopPromote(term)
	if s.db != nil {
		s.db.stepDown(ctx, term)
	}
	s.node.EndDrain(term)
	s.route()
	s.runHook(ctx, hookJob{demote: true, role: gossip.RoleBackup, term: term})
}
