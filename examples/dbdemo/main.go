// Command dbdemo is the database half of the local demo (examples/demo.sh): two sites on
// 127.0.0.1, each with its own PostgreSQL cluster, a tandem sidecar whose txshim the toy
// WireServer stores through, and the server. It shows an operator's write committed on both
// databases, the whole master site killed (sidecar, server and database at once) with nothing
// acknowledged lost, the surviving site going on alone, and the returning site caught up and
// master again, `tandem verify` finding both databases identical.
//
// It starts everything itself (clusters with internal/pgtest, in temp dirs, on free ports) and
// stops and removes it all on exit, on error and on Ctrl-C.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

func main() {
	tandem := flag.String("tandem", "tandem", "the tandem binary")
	wireserver := flag.String("wireserver", "wireserver", "the toy WireServer binary")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{ctx: ctx, tandem: *tandem, wireserver: *wireserver}
	err := d.run()
	if err != nil {
		// Ctrl-C reaches the processes the demo started as it reaches the demo: a step may fail
		// with them a moment before the demo's own handler has cancelled ctx.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if ctx.Err() != nil {
		// Stopped by Ctrl-C (or SIGTERM): the step that failed with its processes, or the wait
		// cut short, is no failure to report.
		d.close()
		os.Exit(130)
	}
	if err != nil && d.logPath != "" {
		tailLog(d.logPath, 40) // before close removes it
	}
	d.close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbdemo:", err)
		os.Exit(1)
	}
}

// site is one site's parts.
type site struct {
	name                         string
	pg                           *pgtest.Cluster
	cfg                          string
	proxy, admin, shim, srv, gsp string
	tandem, server               *exec.Cmd
}

type demo struct {
	ctx                context.Context
	tandem, wireserver string
	dir, logPath       string
	releaseDir         func() // removes dir
	log                *os.File
	sites              [2]*site
	procs              []*exec.Cmd
}

func (d *demo) run() error {
	var err error
	// A pgtest dir: should the demo be killed before close removes it, the next pgtest
	// cluster or dir any process makes does.
	if d.dir, d.releaseDir, err = pgtest.TempDir("dbdemo-"); err != nil {
		return err
	}
	d.logPath = filepath.Join(d.dir, "log")
	if d.log, err = os.Create(d.logPath); err != nil {
		return err
	}
	schemaCmd := exec.Command(d.wireserver, "-schema")
	schemaCmd.SysProcAttr = dieWithDemo()
	schema, err := schemaCmd.Output()
	if err != nil {
		return fmt.Errorf("%s -schema: %w", d.wireserver, err)
	}

	say("== starting two PostgreSQL clusters (wal_level = logical, max_prepared_transactions > 0)")
	for i := range d.sites {
		s := &site{name: fmt.Sprintf("site%d", i+1)}
		d.sites[i] = s
		// Dynamic shared memory in the data directory, removed with it, as pgtest does for test
		// binaries: site1's server, killed -9 below, would otherwise leave its segments in
		// /dev/shm for good when the demo ends (Ctrl-C, an error) before it is restarted.
		if s.pg, err = pgtest.New(pgtest.WithSetting("dynamic_shared_memory_type", "mmap")); err != nil {
			return fmt.Errorf("%s's database: %w", s.name, err)
		}
		if err := exec1(s.pg.DSN(s.pg.Database()), string(schema)); err != nil {
			return fmt.Errorf("%s's schema: %w", s.name, err)
		}
		for _, a := range []*string{&s.proxy, &s.admin, &s.shim, &s.srv, &s.gsp} {
			if *a, err = freeAddr(); err != nil {
				return err
			}
		}
		say("   %s: PostgreSQL on port %d, the WireServer's tables created", s.name, s.pg.Port())
	}
	for i, s := range d.sites {
		if err := d.writeConfig(i, s); err != nil {
			return err
		}
	}

	say("== tandem install: each site's database gets the tandem schema, publication and two-phase slot")
	for _, s := range d.sites {
		install := exec.CommandContext(d.ctx, d.tandem, "install", "-config", s.cfg)
		install.SysProcAttr = dieWithDemo()
		if out, err := install.CombinedOutput(); err != nil {
			return fmt.Errorf("tandem install %s: %w\n%s", s.name, err, out)
		}
	}

	say("== starting both sidecars, then both servers (each stores through its own site's txshim)")
	for _, s := range d.sites {
		if err := d.startTandem(s); err != nil {
			return err
		}
	}
	for _, s := range d.sites {
		if err := d.waitDial(s.shim, 20*time.Second); err != nil {
			return err
		}
		if err := d.startServer(s); err != nil {
			return err
		}
	}
	s1, s2 := d.sites[0], d.sites[1]
	if err := d.waitFor(30*time.Second, "site1 serving through site2's proxy", func() bool { return ask(s2.proxy, "PING") == "PONG site1" }); err != nil {
		return err
	}
	say("   site1 is master: PING through site2's proxy -> %s", ask(s2.proxy, "PING"))

	say("== an operator writes through site2's proxy: prepared on both databases before the reply, then committed on both")
	for _, cmd := range []string{"SET color blue", "SET shape round"} {
		if err := expect(s2.proxy, cmd, "OK site1"); err != nil {
			return err
		}
		say("   %-16s -> OK site1", cmd)
	}
	// The peer's COMMIT PREPARED may land just after the reply (DESIGN §5.3).
	if err := d.waitFor(5*time.Second, "color=blue on site2's database", func() bool { return kv(s2, "color") == "blue" }); err != nil {
		return err
	}
	for _, s := range d.sites {
		say("   %s's database: color = %s", s.name, kv(s, "color"))
	}

	say("== kill -9 site1's sidecar, server and database at once")
	t0 := time.Now()
	for _, c := range []*exec.Cmd{s1.tandem, s1.server} {
		c.Process.Kill()
		c.Wait()
	}
	s1.pg.Kill()
	if err := d.waitFor(30*time.Second, "site2 to serve", func() bool { return ask(s2.proxy, "PING") == "PONG site2" }); err != nil {
		return err
	}
	took := time.Since(t0)
	if err := expect(s2.proxy, "GET color", "VALUE site2 blue"); err != nil {
		return err
	}
	say("   site2 serves %d ms after the kill: GET color -> VALUE site2 blue", took.Milliseconds())
	if err := expect(s2.proxy, "SET color green", "OK site2"); err != nil {
		return err
	}
	say("   site2 goes on alone, its slot keeping what site1 misses: SET color green -> OK site2")
	say("   %s", shimLine(s2))

	say("== site1 comes back: its database, its sidecar, its server")
	if err := s1.pg.Restart(); err != nil {
		return fmt.Errorf("restart site1's database: %w", err)
	}
	if err := d.startTandem(s1); err != nil {
		return err
	}
	if err := d.waitDial(s1.shim, 20*time.Second); err != nil {
		return err
	}
	if err := d.startServer(s1); err != nil {
		return err
	}
	t0 = time.Now()
	if err := d.waitFor(60*time.Second, "site1 master again", func() bool { return ask(s2.proxy, "PING") == "PONG site1" }); err != nil {
		return err
	}
	took = time.Since(t0)
	if err := expect(s1.proxy, "GET color", "VALUE site1 green"); err != nil {
		return err
	}
	say("   caught up and master again after %.1f s (failback_delay 3s): GET color -> VALUE site1 green", took.Seconds())
	say("   %s", shimLine(s1))

	say("== tandem verify: both databases' application tables")
	var report []byte
	err = d.waitFor(20*time.Second, "both databases identical", func() bool {
		var verr error
		verify := exec.CommandContext(d.ctx, d.tandem, "verify", "-config", s1.cfg)
		verify.SysProcAttr = dieWithDemo()
		report, verr = verify.CombinedOutput()
		return verr == nil
	})
	for _, line := range strings.Split(strings.TrimSpace(string(report)), "\n") {
		say("   %s", line)
	}
	if err != nil {
		return err
	}
	say("== demo done")
	return nil
}

// writeConfig writes site i's TOML: no witness, the fast gossip profile, automatic failback.
func (d *demo) writeConfig(i int, s *site) error {
	other := d.sites[1-i]
	s.cfg = filepath.Join(d.dir, s.name+".toml")
	cfg := fmt.Sprintf(`site = %q
priority = %d
data_dir = %q
[gossip]
bind = %q
join = [%q]
profile = "fast"
failback = "auto"
failback_delay = "3s"
[server]
health = "tcp"
health_interval = "200ms"
[[server.endpoint]]
name = "operators"
address = %q
[proxy]
connect_timeout = "10s"
[[proxy.listener]]
endpoint = "operators"
listen = %q
[admin]
listen = %q
[txshim]
listen = %q
local_dsn = %q
peer_dsn = %q
commit_timeout = "3s"
`, s.name, i+1, filepath.Join(d.dir, s.name), s.gsp, other.gsp, s.srv, s.proxy, s.admin, s.shim,
		// The site's own database over its Unix socket, as a sidecar on the database's host
		// would reach it (README); the other site's over TCP.
		s.pg.SocketDSN(s.pg.Database()), other.pg.DSN(other.pg.Database()))
	return os.WriteFile(s.cfg, []byte(cfg), 0o600)
}

func (d *demo) start(name string, args ...string) (*exec.Cmd, error) {
	c := exec.Command(args[0], args[1:]...)
	c.Stdout, c.Stderr = d.log, d.log
	c.SysProcAttr = dieWithDemo()
	fmt.Fprintf(d.log, "--- %s: %s\n", name, strings.Join(args, " "))
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d.procs = append(d.procs, c)
	return c, nil
}

func (d *demo) startTandem(s *site) (err error) {
	s.tandem, err = d.start(s.name+" tandem", d.tandem, "run", "-config", s.cfg)
	return err
}

func (d *demo) startServer(s *site) (err error) {
	dsn := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgtest.Superuser, s.shim, s.pg.Database())
	s.server, err = d.start(s.name+" server", d.wireserver, "-listen", s.srv, "-name", s.name, "-dsn", dsn)
	return err
}

// close stops every process and cluster and removes the temp dir. Safe to call more than once.
func (d *demo) close() {
	for _, c := range d.procs {
		if c.Process != nil && c.ProcessState == nil {
			c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range d.procs {
		if c.Process == nil || c.ProcessState != nil {
			continue
		}
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			<-done
		}
	}
	for _, s := range d.sites {
		if s != nil && s.pg != nil {
			if err := s.pg.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "dbdemo: %s's database: %v\n", s.name, err)
			}
		}
	}
	if d.log != nil {
		d.log.Close()
		d.log = nil
	}
	if d.releaseDir != nil {
		d.releaseDir()
		d.releaseDir = nil
	}
}

func (d *demo) waitFor(limit time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", limit, what)
		}
		select {
		case <-d.ctx.Done():
			return d.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

func (d *demo) waitDial(addr string, limit time.Duration) error {
	return d.waitFor(limit, "a listener on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// ask sends one operator command through a proxy and returns the reply line.
func ask(addr, cmd string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return "(" + err.Error() + ")"
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "(no reply)"
	}
	return strings.TrimSpace(line)
}

// expect sends cmd through the proxy at addr and wants the reply want.
func expect(addr, cmd, want string) error {
	if got := ask(addr, cmd); got != want {
		return fmt.Errorf("%s through %s -> %q, want %q", cmd, addr, got, want)
	}
	return nil
}

// kv reads k from s's database directly.
func kv(s *site, k string) string {
	db, err := sql.Open("postgres", s.pg.DSN(s.pg.Database()))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT v FROM wire_kv WHERE k = $1`, k).Scan(&v); err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

// shimLine summarises the txshim part of s's admin status.
func shimLine(s *site) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.admin + "/status")
	if err != nil {
		return "(status: " + err.Error() + ")"
	}
	defer resp.Body.Close()
	var st struct {
		Role   string `json:"role"`
		Term   uint64 `json:"term"`
		TxShim struct {
			Mode        string `json:"mode"`
			PeerSynced  bool   `json:"peer_synced"`
			CommitsDual int64  `json:"commits_dual"`
			CommitsSolo int64  `json:"commits_solo"`
		} `json:"txshim"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "(status: " + err.Error() + ")"
	}
	return fmt.Sprintf("%s status: role %s, term %d, shim %s, peer synced %v, commits dual %d / solo %d",
		s.name, st.Role, st.Term, st.TxShim.Mode, st.TxShim.PeerSynced, st.TxShim.CommitsDual, st.TxShim.CommitsSolo)
}

func exec1(dsn, query string) error {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(query)
	return err
}

// freeAddr returns a free loopback address no other part of the demo was given: outside the
// kernel's ephemeral range, whose ports a closed listener may hand out twice (two parts of the
// demo once got the same one, and site2's proxy listened on site1's server address).
func freeAddr() (string, error) {
	port, err := pgtest.FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// out is where the demo tells its story.
var out io.Writer = os.Stdout

func say(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }

func tailLog(path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintln(os.Stderr, strings.Join(lines, "\n"))
}
