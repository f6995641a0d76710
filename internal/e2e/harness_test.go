package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// bins holds the binaries built once for the whole package, the toy server's tables
// (wireserver -schema), created on both databases before install (the application schemas
// of both sites must match), and this test binary, which runs the sidecars' hooks (hookMode).
var bins struct{ tandem, wireserver, wireSchema, self string }

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == hookMode {
		// Not os.Exit, which in a -race binary waits a second for late race reports
		// (GORACE atexit_sleep_ms): every hook would take that much longer.
		syscall.Exit(runHook(os.Args[2:]))
	}
	if os.Getenv("E2E_ORPHAN_HELPER") != "" {
		// TestProcessesDieWithTheTest's helper needs no binaries, and is killed: it makes nothing
		// it could not remove.
		os.Exit(m.Run())
	}
	// Removed at the end, or by a later run if this one is killed (go test's -timeout).
	dir, release, err := pgtest.TempDir("e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer release()
		if bins.self, err = os.Executable(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bins.tandem = filepath.Join(dir, "tandem")
		bins.wireserver = filepath.Join(dir, "wireserver")
		for out, pkg := range map[string]string{bins.tandem: "../../cmd/tandem", bins.wireserver: "../../examples/wireserver"} {
			cmd := exec.Command("go", "build", "-race", "-o", out, pkg)
			if b, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
				return 1
			}
		}
		schema, err := exec.Command(bins.wireserver, "-schema").Output()
		if err != nil {
			fmt.Fprintf(os.Stderr, "wireserver -schema: %v\n", err)
			return 1
		}
		bins.wireSchema = string(schema)
		pgtest.DefaultParallel(defaultParallel)
		return pgtest.RunTests(m) // clusters are copies of one template data directory
	}()
	os.Exit(code)
}

// defaultParallel is how many of the package's parallel tests run at once when go test is not
// given -parallel. They are the tests that mostly wait — on fault timeouts, gossip's verdicts,
// catch-ups — without a bound on how fast something must happen. The tests that measure the
// acceptance's time bounds (failover, takeover after SIGTERM) are not parallel: go test runs
// them one after another, before every parallel test, with no other test of the package beside
// them.
const defaultParallel = 3

// hookMode, as this test binary's first argument, makes it runHook with the rest.
const hookMode = "-e2e-hook"

// runHook runs argv as a sidecar's hook and kills it, with all it started, once the sidecar
// is gone. tandem runs each hook in a process group of its own (procgroup.KillOnCancel) and
// kills that group when the hook must stop; but a tandem killed -9 — by the test's cleanup,
// or by its parent death signal when the test binary dies without its cleanups (go test's
// -timeout) — leaves the group running: a sleeping hook outlived its test by minutes. The
// harness wraps its hooks in this rather than change what tandem does with a hook when it is
// killed, which is the operator's affair. It watches its parent rather than ask for a parent
// death signal (setpriv --pdeathsig), which would end the hook's own process alone, not the
// children it waits for.
func runHook(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "e2e hook: no command")
		return 2
	}
	parent := os.Getppid()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e hook:", err)
		return 127
	}
	go func() {
		// Reparented (to init, or to a subreaper): tandem is gone. A tandem gone before the
		// first look goes unnoticed, unless init took us.
		for parent != 1 && os.Getppid() == parent {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Getpgrp() == os.Getpid() {
			_ = syscall.Kill(-os.Getpid(), syscall.SIGKILL) // the hook's group, this process too
		}
		// Not a group of its own (not tandem's doing, then): its parent's group may be the
		// test's or go test's.
		_ = cmd.Process.Kill()
		syscall.Exit(137)
	}()
	_ = cmd.Wait() // its output goes straight to tandem's pipe: nothing to copy, only its end
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		// Ended as the hook did, for tandem's log ("signal: terminated", not "exit status 143").
		_ = syscall.Kill(os.Getpid(), ws.Signal())
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// proc is a child process whose output is kept for the test log.
type proc struct {
	name string
	args []string
	env  []string // added to the test's environment
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a process; the test's cleanup kills it and logs its output on failure (always
// with TANDEM_E2E_LOGS set).
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, args...)
}

// startEnv is start with variables added to the environment.
func startEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, env: env, out: &syncBuffer{}}
	p.run(t)
	t.Cleanup(func() {
		if f, ok := failDumps.LoadAndDelete(t); ok && t.Failed() {
			f.(func())() // before the first process stops: its sessions, waits and locks
		}
		sig := syscall.SIGKILL
		if t.Failed() && (args[0] == bins.tandem || args[0] == bins.wireserver) {
			// A Go program quits on SIGQUIT printing every goroutine (GOTRACEBACK=all, set in
			// run): the log then shows what a process that did not answer was waiting for.
			sig = syscall.SIGQUIT
		}
		p.kill(sig)
		// The binaries are built with -race: a race they hit is printed, not fatal, and a
		// killed process's exit status (66) tells nothing — its output does.
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a data race (its output follows)", p.name)
		}
		if t.Failed() || os.Getenv("TANDEM_E2E_LOGS") != "" {
			t.Logf("--- output of %s ---\n%s", p.name, p.out.String())
		}
	})
	return p
}

// failDumps holds, by test, what a failed test logs of its databases before the first of its
// processes stops.
var failDumps sync.Map

func (p *proc) run(t *testing.T) {
	t.Helper()
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Env = append(append(os.Environ(), "GOTRACEBACK=all"), p.env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	// Killed with the test binary when it dies without running its cleanups (go test's -timeout).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.done = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	fmt.Fprintf(p.out, "=== started %s (pid %d)\n", p.name, p.cmd.Process.Pid)
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
}

// restart starts the process again with the same arguments.
func (p *proc) restart(t *testing.T) {
	t.Helper()
	p.kill(syscall.SIGKILL)
	p.run(t)
}

// signal sends sig and returns at once: a test that wants the process to end by itself then
// asks exited. (kill would end it anyway, after 15 s.)
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// kill sends sig and waits (bounded) for the process to exit, with SIGKILL after 15 s.
func (p *proc) kill(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// exited reports whether the process has ended, waiting up to d.
func (p *proc) exited(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// sigstop sends SIGSTOP to each of pids and returns once every thread of each is stopped, so
// that what the test does next meets frozen processes. kill returns once the stop is under
// way, not done: the signal wakes one thread of a process, which then stops the others, and
// on a loaded machine the others (a Go program's) run on meanwhile — a write sent to a paused
// tandem right after the kill was prepared on both databases before the stop took hold
// (ci213). Should a process not stop within 10 s, all of pids are resumed and the test fails.
func sigstop(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP to %d: %v", pid, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for !allStopped(pid) {
			if time.Now().After(deadline) {
				for _, p := range pids {
					_ = syscall.Kill(p, syscall.SIGCONT)
				}
				t.Fatalf("process %d not stopped 10 s after SIGSTOP", pid)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// allStopped tells whether every thread of process pid is stopped (state T or t in
// /proc/PID/task/TID/stat).
func allStopped(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false
		}
		// The state follows the command's name, which is in parentheses and may hold any byte.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// freePort returns a loopback port free for both TCP and UDP (gossip uses both), never one
// handed out before in this test process, outside the kernel's ephemeral range
// (pgtest.FreePort): processes restarted by a test bind their ports again.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// site is one site of a test cluster: a toy server and its tandem.
type site struct {
	name    string
	server  *proc
	tandem  *proc
	cfg     string // path of its TOML
	srv     string // server address
	proxy   string // proxy listener address
	admin   string
	gossip  string
	hookLog string          // on_promote appends "site role term" here
	pg      *pgtest.Cluster // with clusterOpts.db
	shim    string          // txshim listen address, with clusterOpts.db: site1's a Unix socket
	shimDSN string          // how the server and the tests reach the shim
	// With clusterOpts.links: the relay this site reaches the other site's database through,
	// and the TANDEM_FAULT_CUT file of its tandem (and of the witness, the same on both sites).
	peerLink      *link
	cutFile       string
	witnessGossip string
	witnessCut    string
}

type clusterOpts struct {
	profile       string // default fast
	failback      string // default auto
	failbackDelay string // default 2s
	witness       bool
	serverProxy   string // -proxy of the toy servers: off | v1 | v2
	sendProxy     string // send_proxy of the listeners
	acceptProxy   string // accept_proxy of the listeners
	trusted       string // trusted_cidrs entry
	db            bool   // each site gets a PostgreSQL cluster, a txshim, and a server storing through it
	healthProbe   bool   // the tcp health check sends PING and expects PONG
	// links: each site reaches the other's database through a link relay, and every tandem
	// process reads a TANDEM_FAULT_CUT file, so that isolate can partition the network.
	links bool
	// promoteHook: shell commands the on_promote hook runs after logging the promotion.
	promoteHook string
	// demoteHook: when set, the on_demote hook's shell commands (sh -c).
	demoteHook string
	peerDown   string // txshim.peer_down (db); default continue
}

// cluster starts two sites (and a witness when asked) and waits for site1 to be master.
func cluster(t *testing.T, o clusterOpts) (s1, s2 *site) {
	t.Helper()
	if o.profile == "" {
		o.profile = "fast"
	}
	if o.failback == "" {
		o.failback = "auto"
	}
	if o.failbackDelay == "" {
		o.failbackDelay = "2s"
	}
	if o.serverProxy == "" {
		o.serverProxy = "off"
	}
	if o.sendProxy == "" {
		o.sendProxy = "off"
	}
	if o.acceptProxy == "" {
		o.acceptProxy = "off"
	}
	if o.trusted == "" {
		o.trusted = "127.0.0.0/8"
	}
	dir := tempDir(t, "e2e-")
	sites := []*site{{name: "site1"}, {name: "site2"}}
	for _, s := range sites {
		s.srv = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		s.proxy = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		s.admin = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		s.gossip = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	witnessAddr := ""
	if o.witness {
		witnessAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	if o.db {
		pgs := pgtest.StartN(t, len(sites))
		for i, s := range sites {
			s.pg = pgs[i]
			s.pg.Exec(t, bins.wireSchema)
			port := freePort(t)
			s.shim = fmt.Sprintf("127.0.0.1:%d", port)
			s.shimDSN = fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgtest.Superuser, s.shim, s.pg.Database())
			if s == sites[0] {
				// site1's server reaches its shim over a Unix socket, named as PostgreSQL
				// names its own (README); a short dir: a socket path has at most 107 bytes.
				dir := tempDir(t, "shim-")
				s.shim = filepath.Join(dir, fmt.Sprintf(".s.PGSQL.%d", port))
				s.shimDSN = pgtest.SocketDSN(dir, port, s.pg.Database())
			}
		}
		failDumps.Store(t, func() {
			for _, s := range sites {
				t.Logf("--- %s's database ---\n%s", s.name, pgtest.Activity(s.pg.DSN(s.pg.Database())))
			}
		})
		t.Cleanup(func() { failDumps.Delete(t) })
	}
	var env = func(string) []string { return nil }
	if o.links {
		env = func(name string) []string { return []string{"TANDEM_FAULT_CUT=" + filepath.Join(dir, name+".cut")} }
		for i, s := range sites {
			s.cutFile = filepath.Join(dir, s.name+".cut")
			s.witnessGossip, s.witnessCut = witnessAddr, filepath.Join(dir, "witness.cut")
			if o.db {
				s.peerLink = newLink(t, fmt.Sprintf("127.0.0.1:%d", sites[1-i].pg.Port()))
			}
		}
	}
	for i, s := range sites {
		other := sites[1-i]
		join := fmt.Sprintf("%q", other.gossip)
		if o.witness {
			join += fmt.Sprintf(", %q", witnessAddr)
		}
		probe := ""
		if o.healthProbe {
			probe = "health_send = \"PING\\n\"\nhealth_expect = \"PONG\"\n"
		}
		s.cfg = filepath.Join(dir, s.name+".toml")
		s.hookLog = filepath.Join(dir, s.name+"-hooks.log")
		writeFile(t, s.cfg, fmt.Sprintf(`site = %q
priority = %d
data_dir = %q
[gossip]
bind = %q
join = [%s]
profile = %q
failback = %q
failback_delay = %q
witness = %v
[server]
health = "tcp"
health_interval = "100ms"
health_timeout = "200ms"
health_failures = 2
[[server.endpoint]]
name = "operators"
address = %q
%s[proxy]
trusted_cidrs = [%q]
connect_timeout = "5s"
[[proxy.listener]]
endpoint = "operators"
listen = %q
accept_proxy = %q
send_proxy = %q
[admin]
listen = %q
[hooks]
on_promote = [%q, %q, "sh", "-c", %q]
`, s.name, i+1, filepath.Join(dir, s.name), s.gossip, join, o.profile, o.failback, o.failbackDelay, o.witness,
			s.srv, probe, o.trusted, s.proxy, o.acceptProxy, o.sendProxy, s.admin, bins.self, hookMode,
			fmt.Sprintf(`echo "$TANDEM_SITE $TANDEM_ROLE $TANDEM_TERM" >> %s; %s`, s.hookLog, o.promoteHook)))
		if o.demoteHook != "" {
			appendFile(t, s.cfg, fmt.Sprintf("on_demote = [%q, %q, \"sh\", \"-c\", %q]\n", bins.self, hookMode, o.demoteHook))
		}
	}
	serverArgs := func(s *site) []string {
		args := []string{bins.wireserver, "-listen", s.srv, "-name", s.name, "-proxy", o.serverProxy}
		if o.db {
			args = append(args, "-dsn", s.shimDSN)
		}
		return args
	}
	if o.db {
		// The server stores through its own site's shim, which lives in tandem:
		// install both databases, start the sidecars, then the servers.
		for i, s := range sites {
			peerDSN := sites[1-i].pg.DSN(sites[1-i].pg.Database())
			if s.peerLink != nil {
				peerDSN = strings.Replace(peerDSN, fmt.Sprintf("127.0.0.1:%d", sites[1-i].pg.Port()), s.peerLink.addr(), 1)
			}
			// site1 reaches its own database over the Unix socket, as a sidecar on the
			// database's host would (README); site2 over TCP.
			localDSN := s.pg.DSN(s.pg.Database())
			if i == 0 {
				localDSN = s.pg.SocketDSN(s.pg.Database())
			}
			appendFile(t, s.cfg, fmt.Sprintf("[txshim]\nlisten = %q\nlocal_dsn = %q\npeer_dsn = %q\ncommit_timeout = \"3s\"\n",
				s.shim, localDSN, peerDSN))
			if o.peerDown != "" {
				appendFile(t, s.cfg, fmt.Sprintf("peer_down = %q\n", o.peerDown))
			}
		}
		// Both at once, as configuration management may run them (an install waits for the
		// other's on each database).
		var wg sync.WaitGroup
		errs := make([]error, len(sites))
		for i, s := range sites {
			wg.Go(func() {
				if out, err := exec.Command(bins.tandem, "install", "-config", s.cfg).CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("tandem install %s: %v\n%s", s.name, err, out)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for _, s := range sites {
			s.tandem = startEnv(t, s.name+"-tandem", env(s.name), bins.tandem, "run", "-config", s.cfg, "-log-level", "debug")
		}
		for _, s := range sites {
			waitDial(t, s.shim)
			s.server = start(t, s.name+"-server", serverArgs(s)...)
		}
		// A server listens once it has read its tables through the shim: a test that stops a
		// database before that (a loaded machine makes it slow) would stop that server for good.
		for _, s := range sites {
			waitDialWithin(t, s.srv, 30*time.Second)
		}
	} else {
		for _, s := range sites {
			s.server = start(t, s.name+"-server", serverArgs(s)...)
		}
		for _, s := range sites {
			waitDial(t, s.srv)
			s.tandem = startEnv(t, s.name+"-tandem", env(s.name), bins.tandem, "run", "-config", s.cfg, "-log-level", "debug")
		}
	}
	if o.witness {
		wcfg := filepath.Join(dir, "witness.toml")
		writeFile(t, wcfg, fmt.Sprintf("site = \"witness\"\ndata_dir = %q\n[gossip]\nbind = %q\njoin = [%q, %q]\nprofile = %q\n[admin]\nlisten = \"127.0.0.1:%d\"\n",
			filepath.Join(dir, "witness"), witnessAddr, sites[0].gossip, sites[1].gossip, o.profile, freePort(t)))
		startEnv(t, "witness", env("witness"), bins.tandem, "witness", "-config", wcfg)
	}
	waitFor(t, 20*time.Second, "site1 master", func() bool { return httpStatus(sites[0].admin, "/master") == 200 })
	// site2 may report backup before it has heard of site1's term (its server not yet healthy):
	// wait until it names site1 as master, so a test that stops site1 at once finds site2 current.
	waitFor(t, 10*time.Second, "site2 backup of site1", func() bool {
		return httpStatus(sites[1].admin, "/backup") == 200 && strings.Contains(httpBody(t, sites[1].admin, "/status"), `"master": "site1"`)
	})
	return sites[0], sites[1]
}

// tempDir is t.TempDir for a test whose binary may be killed before its cleanups run (go
// test's -timeout): a pgtest dir, removed when the test ends or else by the next test process
// that makes one.
func tempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, release, err := pgtest.TempDir(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return dir
}

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func waitDial(t *testing.T, addr string) {
	t.Helper()
	waitDialWithin(t, addr, 10*time.Second)
}

// waitDialWithin waits up to limit for something to listen on addr (host:port, or the path of a
// Unix socket).
func waitDialWithin(t *testing.T, addr string, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, "listen "+addr, func() bool {
		network := "tcp"
		if strings.HasPrefix(addr, "/") {
			network = "unix"
		}
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func httpStatus(addr, path string) int {
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpBody(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := httpClient.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// operator is one operator's TCP session through a proxy.
type operator struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialOperator(addr string, timeout time.Duration) (*operator, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	return &operator{conn: c, r: bufio.NewReader(c)}, nil
}

// do sends one command line and returns the reply line.
func (o *operator) do(line string, timeout time.Duration) (string, error) {
	_ = o.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := o.conn.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	reply, err := o.r.ReadString('\n')
	return strings.TrimSpace(reply), err
}

func (o *operator) close() { o.conn.Close() }

// ping opens a fresh operator connection through proxyAddr and returns the
// name of the server that answered PING ("" on any failure).
func ping(proxyAddr string, timeout time.Duration) string {
	o, err := dialOperator(proxyAddr, timeout)
	if err != nil {
		return ""
	}
	defer o.close()
	reply, err := o.do("PING", timeout)
	if err != nil {
		return ""
	}
	name, ok := strings.CutPrefix(reply, "PONG ")
	if !ok {
		return ""
	}
	return name
}

// servedBy polls new operator connections through proxyAddr until one is
// served by want, and returns how long that took.
func servedBy(t *testing.T, proxyAddr, want string, limit time.Duration) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		if got := ping(proxyAddr, 500*time.Millisecond); got == want {
			return time.Since(begin)
		}
		if time.Since(begin) > limit {
			t.Fatalf("no request through %s served by %s within %v", proxyAddr, want, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProcessesDieWithTheTest: a test binary that dies without its cleanups (go test's
// -timeout, kill -9) takes the processes it started with it, rather than leaving sidecars and
// servers running on their ports.
func TestProcessesDieWithTheTest(t *testing.T) {
	if os.Getenv("E2E_ORPHAN_HELPER") != "" {
		p := start(t, "sleeper", "sleep", "600")
		fmt.Printf("ORPHAN %d\n", p.cmd.Process.Pid)
		_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin if it gives up
		return
	}
	f, kill := pgtest.Orphaned(t, "TestProcessesDieWithTheTest", "E2E_ORPHAN_HELPER", 2*time.Minute)
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("the helper said %q: %v", f, err)
	}
	t.Cleanup(func() {
		if t.Failed() { // once it has ended, pid may be another process's
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	kill()
	waitFor(t, 10*time.Second, fmt.Sprintf("process %d to end with the test binary that started it", pid), func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		return err != nil || strings.Contains(string(b[bytes.LastIndexByte(b, ')')+1:]), " Z ")
	})
}
