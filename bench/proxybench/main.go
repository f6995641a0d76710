// Command proxybench measures, in one run and side by side, the toy
// WireServer reached directly, through the tandem proxy and through HAProxy:
// bulk throughput, round-trip latency and the proxies' memory per idle
// connection, and prints the ratios against Tandem's targets.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/bench/internal/benchproc"
	"github.com/tandem-ha/tandem/proxy"
)

// Targets printed beside the figures (see bench/README.md).
const (
	targetThroughput = 0.9  // × direct
	targetAddedP50   = 50.0 // µs
	targetIdleKiB    = 20.0 // per idle connection
)

type flags struct {
	tandem, wireserver, haproxy string
	duration, settle            time.Duration
	conns, idle, pings, rounds  int
	block                       int
}

// target is one way to reach the server.
type target struct {
	name string
	addr string
	proc *benchproc.Child // the proxy process; nil for direct
	err  error            // why this column has no figures

	down, up        []float64       // MB/s per round
	lat1, latN      []time.Duration // sorted round-trip times
	wallN           time.Duration   // wall time of the concurrent latency run
	idle            *idleResult
	bulkErr, latErr string
	idleErr         string
}

func main() {
	os.Exit(run())
}

func run() int {
	var f flags
	flag.StringVar(&f.tandem, "tandem", "", "tandem binary (default: go build ./cmd/tandem into a temp dir)")
	flag.StringVar(&f.wireserver, "wireserver", "", "toy server binary (default: go build ./examples/wireserver)")
	flag.StringVar(&f.haproxy, "haproxy", "", "haproxy binary (default: haproxy on PATH; skipped when absent)")
	flag.DurationVar(&f.duration, "duration", 3*time.Second, "length of each bulk-throughput measurement")
	flag.IntVar(&f.conns, "conns", 4, "connections for bulk throughput and concurrent latency")
	flag.IntVar(&f.idle, "idle", 10000, "idle connections for the memory measurement (0: skip)")
	flag.IntVar(&f.pings, "pings", 20000, "PING round trips per latency measurement")
	flag.IntVar(&f.rounds, "rounds", 3, "bulk rounds per target, interleaved; the median is reported")
	flag.IntVar(&f.block, "block", 4<<20, "bytes per SOURCE/SINK command")
	settle := flag.Duration("settle", 3*time.Second, "wait before each memory reading (lets the proxy settle and collect garbage)")
	flag.Parse()
	f.settle = *settle
	if f.conns < 1 || f.pings < 1 || f.rounds < 1 || f.block < 1 || f.idle < 0 || f.duration <= 0 {
		fmt.Fprintln(os.Stderr, "proxybench: -conns, -pings, -rounds, -block must be positive, -idle ≥ 0")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, f flags) error {
	dir, err := os.MkdirTemp("", "proxybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := &benchproc.Set{Dir: dir}
	defer p.StopAll() // runs before RemoveAll: children may write into dir

	fmt.Printf("machine: %d CPUs, load average %s at start\n", runtime.NumCPU(), loadAvg())
	defer func() {
		fmt.Printf("load average %s at end (figures are only comparable on an otherwise idle machine)\n", loadAvg())
	}()
	fdLimit := raiseNoFile()
	// Tandem's proxy accepts no more connections than its open-file limit fits with a
	// reserve left (proxy.ConnsWithin; more would wait to be accepted). Measure that many,
	// less a margin, on both proxies.
	if maxIdle := proxy.ConnsWithin(fdLimit, 1) - 32; f.idle > maxIdle {
		fmt.Printf("note: RLIMIT_NOFILE hard limit is %d, within which tandem's proxy holds %d connections: measuring %d idle connections instead of %d\n", fdLimit, maxIdle+32, max(maxIdle, 0), f.idle)
		f.idle = max(maxIdle, 0)
	}

	if f.wireserver == "" {
		fmt.Println("building ./examples/wireserver …")
		if f.wireserver, err = benchproc.Build(ctx, dir, "./examples/wireserver", "wireserver"); err != nil {
			return err
		}
	}
	const serverName = "bench"
	port, err := benchproc.FreePort()
	if err != nil {
		return err
	}
	server := fmt.Sprintf("127.0.0.1:%d", port)
	ws, err := p.Start("wireserver", f.wireserver, "-listen", server, "-name", serverName, "-log-level", "warn")
	if err != nil {
		return err
	}
	if err := benchproc.WaitServing(ctx, ws, server, serverName, 10*time.Second); err != nil {
		return err
	}

	direct := &target{name: "direct", addr: server}
	tandem := &target{name: "tandem"}
	haproxy := &target{name: "haproxy"}
	targets := []*target{direct, tandem, haproxy}

	if f.tandem == "" {
		fmt.Println("building ./cmd/tandem …")
		f.tandem, tandem.err = benchproc.Build(ctx, dir, "./cmd/tandem", "tandem")
	}
	if tandem.err == nil {
		tandem.addr, tandem.proc, tandem.err = startTandem(ctx, p, f.tandem, server, serverName, f.idle+32)
	}
	if tandem.err != nil {
		fmt.Printf("tandem: skipped: %v\n", tandem.err)
		if tandem.proc != nil {
			tandem.proc.Stop()
		}
	}

	if f.haproxy == "" {
		f.haproxy, haproxy.err = exec.LookPath("haproxy")
		if haproxy.err != nil {
			haproxy.err = fmt.Errorf("haproxy not on PATH (apt-get install haproxy to compare)")
		}
	}
	if haproxy.err == nil {
		haproxy.addr, haproxy.proc, haproxy.err = startHAProxy(ctx, p, f.haproxy, server, serverName, f.idle+32)
	}
	if haproxy.err != nil {
		fmt.Printf("haproxy: skipped: %v\n", haproxy.err)
	}
	live := slices.DeleteFunc(slices.Clone(targets), func(t *target) bool { return t.err != nil })

	fmt.Printf("bulk: %d connection(s), %d MiB blocks, %v per run, %d interleaved round(s)\n", f.conns, f.block>>20, f.duration, f.rounds)
	for r := range f.rounds {
		for _, t := range live {
			for _, upload := range []bool{false, true} {
				mbps, err := throughput(ctx, t.addr, f.conns, f.duration, f.block, upload)
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					t.bulkErr = err.Error()
					continue
				}
				if upload {
					t.up = append(t.up, mbps)
				} else {
					t.down = append(t.down, mbps)
				}
				fmt.Printf("  round %d %-8s %-8s %8.0f MB/s\n", r+1, t.name, map[bool]string{false: "download", true: "upload"}[upload], mbps)
			}
		}
	}

	fmt.Printf("latency: %d PING round trips on 1 connection, then spread over %d, in %d interleaved round(s)\n", f.pings, f.conns, f.rounds)
	per := max(f.pings/f.rounds, 1)
	for range f.rounds {
		for _, t := range live {
			if t.latErr != "" {
				continue
			}
			one, _, err := latencies(ctx, t.addr, 1, per)
			var many []time.Duration
			var wall time.Duration
			if err == nil {
				many, wall, err = latencies(ctx, t.addr, f.conns, per)
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				t.latErr = err.Error()
				continue
			}
			t.lat1 = append(t.lat1, one...)
			t.latN = append(t.latN, many...)
			t.wallN += wall
		}
	}
	for _, t := range live {
		slices.Sort(t.lat1)
		slices.Sort(t.latN)
	}

	if f.idle > 0 {
		fmt.Printf("idle memory: %d connections, %v settle\n", f.idle, f.settle)
		for _, t := range live {
			if t.proc == nil {
				continue
			}
			res, err := idleMemory(ctx, t.addr, t.proc.Pid(), f.idle, f.settle)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				t.idleErr = err.Error()
				continue
			}
			t.idle = &res
			// The connections are closed now; give both ends time to let go
			// before the next proxy takes its turn on the same server.
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
		}
	}

	report(os.Stdout, f, targets)
	return nil
}

// raiseNoFile lifts the soft open-file limit to the hard one (children
// inherit it) and returns the new limit.
func raiseNoFile() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		}
	}
	return lim.Cur
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func report(w *os.File, f flags, targets []*target) {
	direct, tandem, haproxy := targets[0], targets[1], targets[2]
	fmt.Fprintf(w, "\n%-24s%12s%12s%12s\n", "", "direct", "tandem", "haproxy")
	row := func(label string, cell func(t *target) (string, bool)) {
		fmt.Fprintf(w, "%-24s", label)
		for _, t := range targets {
			s, ok := cell(t)
			if t.err != nil || !ok {
				s = "-"
			}
			fmt.Fprintf(w, "%12s", s)
		}
		fmt.Fprintln(w)
	}
	row("download MB/s", func(t *target) (string, bool) { return fmt.Sprintf("%.0f", median(t.down)), len(t.down) > 0 })
	row("upload MB/s", func(t *target) (string, bool) { return fmt.Sprintf("%.0f", median(t.up)), len(t.up) > 0 })
	row("p50 µs, 1 conn", func(t *target) (string, bool) {
		return fmt.Sprintf("%.1f", us(percentile(t.lat1, .5))), len(t.lat1) > 0
	})
	row("p99 µs, 1 conn", func(t *target) (string, bool) {
		return fmt.Sprintf("%.1f", us(percentile(t.lat1, .99))), len(t.lat1) > 0
	})
	row(fmt.Sprintf("p50 µs, %d conns", f.conns), func(t *target) (string, bool) {
		return fmt.Sprintf("%.1f", us(percentile(t.latN, .5))), len(t.latN) > 0
	})
	row(fmt.Sprintf("p99 µs, %d conns", f.conns), func(t *target) (string, bool) {
		return fmt.Sprintf("%.1f", us(percentile(t.latN, .99))), len(t.latN) > 0
	})
	row(fmt.Sprintf("req/s, %d conns", f.conns), func(t *target) (string, bool) {
		return fmt.Sprintf("%.0f", float64(len(t.latN))/t.wallN.Seconds()), len(t.latN) > 0
	})
	row("idle RSS KiB/conn", func(t *target) (string, bool) {
		if t.idle == nil {
			return "", false
		}
		rss, _ := t.idle.kibPerConn()
		return fmt.Sprintf("%.1f", rss), true
	})
	row("idle PSS KiB/conn", func(t *target) (string, bool) {
		if t.idle == nil {
			return "", false
		}
		_, pss := t.idle.kibPerConn()
		return fmt.Sprintf("%.1f", pss), true
	})
	row("proxy fds before/after", func(t *target) (string, bool) {
		if t.idle == nil {
			return "", false
		}
		return fmt.Sprintf("%d/%d", t.idle.before.fds, t.idle.after.fds), true
	})

	for _, t := range targets {
		for _, e := range []string{t.bulkErr, t.latErr, t.idleErr} {
			if e != "" {
				fmt.Fprintf(w, "%s: error: %s\n", t.name, e)
			}
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratios (target in brackets):")
	check := func(label string, ok, have bool, value string) {
		switch {
		case !have:
			fmt.Fprintf(w, "  %-40s n/a\n", label)
		case ok:
			fmt.Fprintf(w, "  %-40s %s  ok\n", label, value)
		default:
			fmt.Fprintf(w, "  %-40s %s  MISSED\n", label, value)
		}
	}
	ratio := func(a, b []float64) (float64, bool) {
		if len(a) == 0 || len(b) == 0 || median(b) == 0 {
			return 0, false
		}
		return median(a) / median(b), true
	}
	for _, dir := range []struct {
		name string
		get  func(*target) []float64
	}{{"download", func(t *target) []float64 { return t.down }}, {"upload", func(t *target) []float64 { return t.up }}} {
		r, ok := ratio(dir.get(tandem), dir.get(direct))
		check(fmt.Sprintf("tandem/direct %s [≥ %.1f×]", dir.name, targetThroughput), r >= targetThroughput, ok, fmt.Sprintf("%.2f×", r))
		if h, ok := ratio(dir.get(haproxy), dir.get(direct)); ok {
			fmt.Fprintf(w, "  %-40s %.2f×\n", "haproxy/direct "+dir.name, h)
		}
		r, ok = ratio(dir.get(tandem), dir.get(haproxy))
		check(fmt.Sprintf("tandem/haproxy %s [≥ 1.0×]", dir.name), r >= 1, ok, fmt.Sprintf("%.2f×", r))
	}
	added := func(lat []time.Duration, base []time.Duration, p float64) (float64, bool) {
		if len(lat) == 0 || len(base) == 0 {
			return 0, false
		}
		return us(percentile(lat, p)) - us(percentile(base, p)), true
	}
	for _, c := range []struct {
		label string
		pick  func(*target) []time.Duration
	}{{"1 conn", func(t *target) []time.Duration { return t.lat1 }}, {fmt.Sprintf("%d conns", f.conns), func(t *target) []time.Duration { return t.latN }}} {
		a50, ok := added(c.pick(tandem), c.pick(direct), .5)
		check(fmt.Sprintf("tandem added p50, %s [≤ %.0f µs]", c.label, targetAddedP50), a50 <= targetAddedP50, ok, fmt.Sprintf("%+.1f µs", a50))
		a99, ok := added(c.pick(tandem), c.pick(direct), .99)
		if ok {
			fmt.Fprintf(w, "  %-40s %+.1f µs\n", "tandem added p99, "+c.label, a99)
		}
		if h50, ok := added(c.pick(haproxy), c.pick(direct), .5); ok {
			h99, _ := added(c.pick(haproxy), c.pick(direct), .99)
			fmt.Fprintf(w, "  %-40s %+.1f / %+.1f µs\n", "haproxy added p50/p99, "+c.label, h50, h99)
		}
		for _, p := range []float64{.5, .99} {
			tl, hl := c.pick(tandem), c.pick(haproxy)
			have := len(tl) > 0 && len(hl) > 0
			var tv, hv float64
			if have {
				tv, hv = us(percentile(tl, p)), us(percentile(hl, p))
			}
			check(fmt.Sprintf("tandem/haproxy p%.0f, %s [≤ 1.0×]", p*100, c.label), tv <= hv, have, fmt.Sprintf("%.2f× (%.1f vs %.1f µs)", tv/max(hv, 1e-9), tv, hv))
		}
	}
	if tandem.idle != nil {
		rss, pss := tandem.idle.kibPerConn()
		check(fmt.Sprintf("tandem idle RSS per conn [≤ %.0f KiB]", targetIdleKiB), rss <= targetIdleKiB, true, fmt.Sprintf("%.1f KiB (PSS %.1f)", rss, pss))
	} else {
		check(fmt.Sprintf("tandem idle RSS per conn [≤ %.0f KiB]", targetIdleKiB), false, false, "")
	}
	if haproxy.idle != nil && tandem.idle != nil {
		tr, _ := tandem.idle.kibPerConn()
		hr, _ := haproxy.idle.kibPerConn()
		fmt.Fprintf(w, "  %-40s %.2f×\n", "tandem/haproxy idle memory", tr/max(hr, 1e-9))
	}
	for _, t := range targets {
		if t.err != nil {
			fmt.Fprintf(w, "%s: not measured: %v\n", t.name, t.err)
		}
	}
}
