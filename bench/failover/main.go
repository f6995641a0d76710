// Command failover measures, in one run and side by side, how long new
// operator connections go unserved when site1 fails: the time from a fault to
// the first connection served by site2's server, through tandem's proxy at
// site2 and through HAProxy with health checks and a backup server, and the
// time from the repair until control is back at site1. It prints the medians,
// the ratios and Tandem's targets (DESIGN.md §7).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/bench/internal/benchproc"
)

// fault is one way site1 fails, and its repair.
type fault struct {
	name    string
	haproxy bool   // HAProxy, which has no sidecar, meets this fault too
	target  string // "server" or "tandem": whose process the fault hits
	sig     syscall.Signal
	repair  string        // "restart" or "continue"
	goal    time.Duration // Tandem's target for the first served connection (0: none)
}

var faults = []fault{
	{name: "server kill -9", haproxy: true, target: "server", sig: syscall.SIGKILL, repair: "restart", goal: time.Second},
	{name: "server frozen (SIGSTOP)", haproxy: true, target: "server", sig: syscall.SIGSTOP, repair: "continue"},
	{name: "tandem kill -9", target: "tandem", sig: syscall.SIGKILL, repair: "restart", goal: 2 * time.Second},
	{name: "tandem frozen (SIGSTOP)", target: "tandem", sig: syscall.SIGSTOP, repair: "continue"},
	{name: "tandem SIGTERM", target: "tandem", sig: syscall.SIGTERM, repair: "restart"},
}

type flags struct {
	tandem, wireserver, haproxy string
	profiles                    []string
	rounds                      int
	keep                        bool
	failbackDelay, poll, limit  time.Duration
}

func main() { os.Exit(run()) }

func run() int {
	var f flags
	flag.StringVar(&f.tandem, "tandem", "", "tandem binary (default: build ./cmd/tandem)")
	flag.StringVar(&f.wireserver, "wireserver", "", "toy server binary (default: build ./examples/wireserver)")
	flag.StringVar(&f.haproxy, "haproxy", "", "haproxy binary (default: haproxy on PATH; the baseline is skipped without it)")
	profiles := flag.String("profiles", "fast,lan", "gossip profiles to measure, comma-separated")
	flag.IntVar(&f.rounds, "rounds", 5, "faults of each kind per profile; the median is reported")
	flag.DurationVar(&f.failbackDelay, "failback-delay", time.Second, "gossip.failback_delay of both sites")
	flag.DurationVar(&f.poll, "poll", 10*time.Millisecond, "a new operator connection is opened this often while waiting")
	flag.BoolVar(&f.keep, "keep", false, "keep the temp dir (configs, data dirs and every child's log) and print its path")
	flag.DurationVar(&f.limit, "limit", 60*time.Second, "longest wait for a failover or a failback before the run fails")
	flag.Parse()
	f.profiles = strings.Split(*profiles, ",")
	for _, p := range f.profiles {
		if p != "fast" && p != "lan" && p != "wan" {
			fmt.Fprintf(os.Stderr, "failover: unknown profile %q (fast, lan, wan)\n", p)
			return 2
		}
	}
	if f.rounds < 1 || f.poll <= 0 || f.limit <= 0 || f.failbackDelay <= 0 {
		fmt.Fprintln(os.Stderr, "failover: -rounds, -poll, -limit and -failback-delay must be positive")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		return 1
	}
	return 0
}

// result is the measurements of one fault kind under one set-up.
type result struct {
	failover, failback []time.Duration
}

func bench(ctx context.Context, f flags) error {
	dir, err := os.MkdirTemp("", "failoverbench-")
	if err != nil {
		return err
	}
	defer func() {
		if f.keep {
			fmt.Println("kept:", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	p := &benchproc.Set{Dir: dir}
	defer p.StopAll() // runs before RemoveAll: children write into dir

	fmt.Printf("machine: %d CPUs\n", runtime.NumCPU())
	for _, b := range []struct {
		bin       *string
		pkg, name string
	}{{&f.wireserver, "./examples/wireserver", "wireserver"}, {&f.tandem, "./cmd/tandem", "tandem"}} {
		if *b.bin == "" {
			fmt.Printf("building %s …\n", b.pkg)
			if *b.bin, err = benchproc.Build(ctx, dir, b.pkg, b.name); err != nil {
				return err
			}
		}
	}
	if f.haproxy == "" {
		if f.haproxy, err = exec.LookPath("haproxy"); err != nil {
			fmt.Println("haproxy: skipped: not on PATH (apt-get install haproxy to compare)")
			f.haproxy = ""
		}
	}

	var ha *haSetup
	if f.haproxy != "" {
		if ha, err = startHA(ctx, p, f); err != nil {
			return fmt.Errorf("haproxy baseline: %w", err)
		}
	}
	fmt.Printf("health checks: PING/PONG every 100ms, 2 failures, 200ms timeout (both); failback_delay %v; %d round(s)\n\n", f.failbackDelay, f.rounds)

	tandemRes := map[string]map[string]*result{} // profile → fault → result
	haRes := map[string]*result{}
	for _, profile := range f.profiles {
		pair, err := startPair(ctx, p, f, profile)
		if err != nil {
			return fmt.Errorf("tandem (%s): %w", profile, err)
		}
		tandemRes[profile] = map[string]*result{}
		for r := range f.rounds {
			for _, ft := range faults {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res := tandemRes[profile][ft.name]
				if res == nil {
					res = &result{}
					tandemRes[profile][ft.name] = res
				}
				over, back, err := pair.measure(ctx, p, f, ft)
				if err != nil {
					return fmt.Errorf("tandem (%s), %s, round %d: %w", profile, ft.name, r+1, err)
				}
				res.failover, res.failback = append(res.failover, over), append(res.failback, back)
				fmt.Printf("  %-5s round %d %-24s tandem  failover %8s  failback %8s\n", profile, r+1, ft.name, ms(over), ms(back))
				// HAProxy's rounds are interleaved with the first profile's.
				if ha == nil || !ft.haproxy || profile != f.profiles[0] {
					continue
				}
				hres := haRes[ft.name]
				if hres == nil {
					hres = &result{}
					haRes[ft.name] = hres
				}
				over, back, err = ha.measure(ctx, p, f, ft)
				if err != nil {
					return fmt.Errorf("haproxy, %s, round %d: %w", ft.name, r+1, err)
				}
				hres.failover, hres.failback = append(hres.failover, over), append(hres.failback, back)
				fmt.Printf("  %-5s round %d %-24s haproxy failover %8s  failback %8s\n", "", r+1, ft.name, ms(over), ms(back))
			}
		}
		pair.stop()
	}

	fmt.Printf("\nmedian (max) of %d round(s): fault → first new connection served by site2; repair → first served by site1\n", f.rounds)
	fmt.Printf("%-24s %-8s %22s %22s %22s\n", "fault", "profile", "tandem failover", "haproxy failover", "tandem failback")
	for _, profile := range f.profiles {
		for _, ft := range faults {
			t := tandemRes[profile][ft.name]
			haCol := "-"
			if h := haRes[ft.name]; h != nil && profile == f.profiles[0] {
				haCol = medMax(h.failover)
			}
			fmt.Printf("%-24s %-8s %22s %22s %22s\n", ft.name, profile, medMax(t.failover), haCol, medMax(t.failback))
		}
	}
	fmt.Println("\nratios and targets:")
	for _, profile := range f.profiles {
		for _, ft := range faults {
			t := median(tandemRes[profile][ft.name].failover)
			if h := haRes[ft.name]; h != nil && profile == f.profiles[0] {
				fmt.Printf("  tandem/haproxy failover, %-24s %-5s %.2f×\n", ft.name+",", profile, float64(t)/float64(median(h.failover)))
			}
			if ft.goal > 0 && profile == "fast" {
				verdict := "ok"
				if t >= ft.goal {
					verdict = "MISSED"
				}
				fmt.Printf("  tandem failover, %-24s %-5s %s [< %v]  %s\n", ft.name+",", profile, ms(t), ft.goal, verdict)
			}
		}
	}
	return nil
}

// site is one site's toy server and, for tandem, its sidecar.
type site struct {
	name                      string
	srv, proxy, admin, gossip string
	serverArgs, tandemArgs    []string
	server, tandem            *benchproc.Child
}

// pair is two tandem sites, site1 preferred.
type pair struct{ s1, s2 *site }

func ports(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		port, err := benchproc.FreePort()
		if err != nil {
			return nil, err
		}
		out[i] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	return out, nil
}

// startServers starts the two toy servers named site1 and site2.
func startServers(ctx context.Context, p *benchproc.Set, f flags, tag string) ([2]*site, error) {
	var sites [2]*site
	addrs, err := ports(2)
	if err != nil {
		return sites, err
	}
	for i := range sites {
		s := &site{name: fmt.Sprintf("site%d", i+1), srv: addrs[i]}
		s.serverArgs = []string{f.wireserver, "-listen", s.srv, "-name", s.name, "-log-level", "warn"}
		if s.server, err = p.Start(tag+"-"+s.name+"-server", s.serverArgs...); err != nil {
			return sites, err
		}
		if err := benchproc.WaitServing(ctx, s.server, s.srv, s.name, 10*time.Second); err != nil {
			return sites, err
		}
		sites[i] = s
	}
	return sites, nil
}

const siteConfig = `site = %q
priority = %d
data_dir = %q
[gossip]
bind = %q
join = [%q]
profile = %q
failback = "auto"
failback_delay = %q
[server]
health = "tcp"
health_interval = "100ms"
health_timeout = "200ms"
health_failures = 2
[[server.endpoint]]
name = "operators"
address = %q
health_send = "PING\n"
health_expect = "PONG"
[proxy]
connect_timeout = "2s"
[[proxy.listener]]
endpoint = "operators"
listen = %q
[admin]
listen = %q
`

func startPair(ctx context.Context, p *benchproc.Set, f flags, profile string) (*pair, error) {
	sites, err := startServers(ctx, p, f, profile)
	if err != nil {
		return nil, err
	}
	for _, s := range sites {
		addrs, err := ports(3)
		if err != nil {
			return nil, err
		}
		s.proxy, s.admin, s.gossip = addrs[0], addrs[1], addrs[2]
	}
	for i, s := range sites {
		cfg := filepath.Join(p.Dir, profile+"-"+s.name+".toml")
		text := fmt.Sprintf(siteConfig, s.name, i+1, filepath.Join(p.Dir, profile+"-"+s.name), s.gossip, sites[1-i].gossip,
			profile, f.failbackDelay, s.srv, s.proxy, s.admin)
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			return nil, err
		}
		s.tandemArgs = []string{f.tandem, "run", "-config", cfg, "-log-level", "debug"}
		if s.tandem, err = p.Start(profile+"-"+s.name+"-tandem", s.tandemArgs...); err != nil {
			return nil, err
		}
	}
	pr := &pair{sites[0], sites[1]}
	return pr, pr.settled(ctx, f.limit)
}

// settled waits until site1 is master, site2 its backup naming it, and a new
// connection through site2's proxy reaches site1's server.
func (pr *pair) settled(ctx context.Context, limit time.Duration) error {
	if err := benchproc.WaitAdmin(ctx, pr.s1.tandem, pr.s1.admin, "/master", limit); err != nil {
		return err
	}
	if err := benchproc.WaitAdmin(ctx, pr.s2.tandem, pr.s2.admin, "/backup", limit); err != nil {
		return err
	}
	_, err := servedBy(ctx, pr.s2.proxy, "site1", time.Now(), limit, 10*time.Millisecond)
	return err
}

func (pr *pair) stop() {
	for _, s := range []*site{pr.s1, pr.s2} {
		s.tandem.Stop()
		s.server.Stop()
	}
}

// measure applies ft to site1 and repairs it, and returns the time from the
// fault to the first new connection through site2's proxy served by site2,
// and from the repair to the first served by site1 again.
func (pr *pair) measure(ctx context.Context, p *benchproc.Set, f flags, ft fault) (over, back time.Duration, err error) {
	if err := pr.settled(ctx, f.limit); err != nil {
		return 0, 0, err
	}
	s1 := pr.s1
	proc, args := &s1.server, s1.serverArgs
	if ft.target == "tandem" {
		proc, args = &s1.tandem, s1.tandemArgs
	}
	begin := time.Now()
	(*proc).Signal(ft.sig)
	if over, err = servedBy(ctx, pr.s2.proxy, "site2", begin, f.limit, f.poll); err != nil {
		return 0, 0, err
	}
	if back, err = repair(ctx, p, proc, args, ft, pr.s2.proxy, f); err != nil {
		return over, 0, err
	}
	return over, back, nil
}

// repair undoes ft on the process *proc (restarting it with args, or letting
// it go on) and returns the time until a new connection through proxy is
// served by site1 again.
func repair(ctx context.Context, p *benchproc.Set, proc **benchproc.Child, args []string, ft fault, proxy string, f flags) (time.Duration, error) {
	begin := time.Now()
	switch ft.repair {
	case "continue":
		(*proc).Signal(syscall.SIGCONT)
	case "restart":
		if ft.sig != syscall.SIGKILL && !(*proc).Wait(15*time.Second) {
			(*proc).Signal(syscall.SIGKILL)
		}
		(*proc).Wait(15 * time.Second)
		c, err := p.Start((*proc).Name, args...)
		if err != nil {
			return 0, err
		}
		*proc = c
	}
	return servedBy(ctx, proxy, "site1", begin, f.limit, f.poll)
}

// servedBy opens a new operator connection through proxy every poll (at most
// 64 waiting at once) and returns the time from begin until one of them is
// answered by the server named want.
func servedBy(ctx context.Context, proxy, want string, begin time.Time, limit, poll time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	served := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, 64)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	last := "no answer"
	var lastMu sync.Mutex
	for {
		select {
		case slots <- struct{}{}:
			wg.Go(func() {
				defer func() { <-slots }()
				reply, err := benchproc.Ping(proxy, 2*time.Second)
				if reply == "PONG "+want {
					select {
					case served <- time.Since(begin):
					default:
					}
					return
				}
				lastMu.Lock()
				last = fmt.Sprintf("%q, %v", reply, err)
				lastMu.Unlock()
			})
		default:
		}
		select {
		case d := <-served:
			cancel()
			return d, nil
		case <-ctx.Done():
			lastMu.Lock()
			defer lastMu.Unlock()
			return 0, fmt.Errorf("no connection through %s served by %s within %v (last: %s)", proxy, want, limit, last)
		case <-tick.C:
		}
	}
}

// haSetup is the baseline: HAProxy in front of two toy servers, site2 a
// backup, both with the same PING/PONG check as the tandem sites.
type haSetup struct {
	sites [2]*site
	proxy string
}

const haproxyConfig = `global
    maxconn 1000
defaults
    mode tcp
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 200ms
listen failover
    bind %s
    option tcp-check
    tcp-check send "PING\n"
    tcp-check expect string PONG
    server site1 %s check inter 100ms fall 2 rise 2 on-marked-down shutdown-sessions
    server site2 %s check inter 100ms fall 2 rise 2 backup on-marked-down shutdown-sessions
`

func startHA(ctx context.Context, p *benchproc.Set, f flags) (*haSetup, error) {
	sites, err := startServers(ctx, p, f, "haproxy")
	if err != nil {
		return nil, err
	}
	addrs, err := ports(1)
	if err != nil {
		return nil, err
	}
	h := &haSetup{sites: sites, proxy: addrs[0]}
	cfg := filepath.Join(p.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, h.proxy, sites[0].srv, sites[1].srv), 0o600); err != nil {
		return nil, err
	}
	c, err := p.Start("haproxy", f.haproxy, "-db", "-f", cfg)
	if err != nil {
		return nil, err
	}
	return h, benchproc.WaitServing(ctx, c, h.proxy, "site1", 10*time.Second)
}

func (h *haSetup) measure(ctx context.Context, p *benchproc.Set, f flags, ft fault) (over, back time.Duration, err error) {
	if _, err := servedBy(ctx, h.proxy, "site1", time.Now(), f.limit, f.poll); err != nil {
		return 0, 0, err
	}
	s1 := h.sites[0]
	begin := time.Now()
	s1.server.Signal(ft.sig)
	if over, err = servedBy(ctx, h.proxy, "site2", begin, f.limit, f.poll); err != nil {
		return 0, 0, err
	}
	if back, err = repair(ctx, p, &s1.server, s1.serverArgs, ft, h.proxy, f); err != nil {
		return over, 0, err
	}
	return over, back, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func medMax(ds []time.Duration) string {
	return fmt.Sprintf("%s (%s)", ms(median(ds)), ms(slices.Max(ds)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
