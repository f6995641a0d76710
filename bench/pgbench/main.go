// Command pgbench measures, in one run and side by side, pgbench's TPC-B-like workload on one
// PostgreSQL database, on a primary with a synchronous streaming standby, and through the
// txshim in dual mode over two databases, prints the ratios against Tandem's target, and
// profiles the shim run to show where its time goes.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

// Targets and references printed beside the figures (see bench/README.md).
const (
	targetShim   = 0.45 // shim TPS ≥ 0.45 × direct (DESIGN §7)
	referenceRep = 0.62 // synchronous replication on this kind of machine, for comparison
)

type flags struct {
	scale, clients, jobs, seconds int
	mode                          string
	rounds                        int
	countSeconds                  int
	only                          string
	pgbench, goTool               string
	profDir                       string
	verbose                       bool
	peerConns                     int
	bulk                          bool
	localSocket, socket           bool
}

func main() {
	os.Exit(run())
}

func run() int {
	var f flags
	flag.IntVar(&f.scale, "s", 10, "pgbench scale factor for pgbench -i")
	flag.IntVar(&f.clients, "c", 8, "pgbench clients (-c)")
	flag.IntVar(&f.jobs, "j", 2, "pgbench threads (-j)")
	flag.IntVar(&f.seconds, "T", 20, "seconds per pgbench run (-T)")
	flag.StringVar(&f.mode, "M", "prepared", "pgbench query mode (-M): simple, extended or prepared")
	flag.IntVar(&f.rounds, "rounds", 1, "rounds; each runs direct, sync replication and shim in turn")
	flag.IntVar(&f.countSeconds, "count-seconds", 5, "length of the extra shim run that counts round trips and blocked time (0: skip)")
	flag.StringVar(&f.only, "only", "direct,sync,shim", "comma-separated subset of direct, sync, shim")
	flag.StringVar(&f.pgbench, "pgbench", "pgbench", "pgbench binary")
	flag.StringVar(&f.goTool, "go", "go", "go command, for go tool pprof")
	flag.StringVar(&f.profDir, "profdir", "", "where profiles are written and kept (default: a new temp dir)")
	flag.BoolVar(&f.verbose, "v", false, "log the shim's info messages")
	flag.IntVar(&f.peerConns, "peer-conns", 0, "the Shipper's peer connections (ShipperConfig.Conns; 0: its default)")
	flag.BoolVar(&f.localSocket, "local-socket", false, "the shim's sessions and decoder reach the local database over its Unix socket, as a sidecar on the database's host would (default: TCP on 127.0.0.1, like every other connection)")
	flag.BoolVar(&f.socket, "socket", false, "every connection on the host over Unix sockets: pgbench to each database and to the shim (which listens on one), and the shim to its local database (implies -local-socket)")
	flag.BoolVar(&f.bulk, "bulk", false, "load the shim's databases with pgbench -i through the shim (one transaction of 100 000 × -s rows), timed against pgbench -i direct")
	flag.Parse()
	f.localSocket = f.localSocket || f.socket
	if f.scale < 1 || f.clients < 1 || f.jobs < 1 || f.seconds < 1 || f.rounds < 1 || f.countSeconds < 0 {
		fmt.Fprintln(os.Stderr, "pgbench bench: -s, -c, -j, -T and -rounds must be positive, -count-seconds ≥ 0")
		return 2
	}
	// SIGPIPE too: with stdout piped into head, a write must not kill the process before the
	// clusters are removed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	if err := bench(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "pgbench bench:", err)
		return 1
	}
	return 0
}

// target is one way of committing that the benchmark measures.
type target struct {
	name     string
	dsn      string       // where pgbench connects
	dataDirs []clusterDir // clusters whose CPU time counts for this configuration
	results  []result
}

func (c *target) best() (tps, lat float64, ok bool) {
	// With one round this is that round; with more, the median TPS round.
	rs := slices.DeleteFunc(slices.Clone(c.results), func(r result) bool { return r.err != nil })
	if len(rs) == 0 {
		return 0, 0, false
	}
	slices.SortFunc(rs, func(a, b result) int {
		switch {
		case a.tps < b.tps:
			return -1
		case a.tps > b.tps:
			return 1
		}
		return 0
	})
	m := rs[len(rs)/2]
	return m.tps, m.latencyMS, true
}

func bench(ctx context.Context, f flags) (err error) {
	want := map[string]bool{}
	for _, n := range strings.Split(f.only, ",") {
		switch n = strings.TrimSpace(n); n {
		case "direct", "sync", "shim":
			want[n] = true
		case "":
		default:
			return fmt.Errorf("-only: unknown configuration %q", n)
		}
	}
	if _, err := exec.LookPath(f.pgbench); err != nil {
		return fmt.Errorf("pgbench not found (apt-get install postgresql-contrib or postgresql-client): %w", err)
	}
	fmt.Printf("machine: %d CPUs, load average %s at start\n", runtime.NumCPU(), loadAvg())
	defer func() {
		fmt.Printf("load average %s at end (figures are only comparable on an otherwise idle machine)\n", loadAvg())
	}()
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	var clusters []*pgtest.Cluster
	defer func() {
		for _, c := range clusters {
			if cerr := c.Close(); cerr != nil {
				fmt.Fprintf(os.Stderr, "close cluster %s: %v\n", c.Dir(), cerr)
			}
		}
	}()
	newCluster := func() (*pgtest.Cluster, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := pgtest.New()
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
		return c, nil
	}
	dataDir := func(c *pgtest.Cluster) string { return filepath.Join(c.Dir(), "data") }

	start := time.Now()
	var direct, primary, local, peer *pgtest.Cluster
	var targets []*target
	var toInit []*pgtest.Cluster
	if want["direct"] {
		if direct, err = newCluster(); err != nil {
			return err
		}
		toInit = append(toInit, direct)
	}
	if want["sync"] {
		if primary, err = newCluster(); err != nil {
			return err
		}
		toInit = append(toInit, primary)
	}
	if want["shim"] {
		if local, err = newCluster(); err != nil {
			return err
		}
		if peer, err = newCluster(); err != nil {
			return err
		}
		if !f.bulk {
			toInit = append(toInit, local, peer)
		}
	}
	if f.bulk && (direct == nil || local == nil) {
		return errors.New("-bulk needs the direct and shim configurations")
	}
	var bulkDirect time.Duration
	if f.bulk {
		// Timed alone, before anything else runs.
		fmt.Printf("pgbench -i -s %d direct (timed) …\n", f.scale)
		t0 := time.Now()
		if err := pgbenchInit(ctx, f, direct.DSN(direct.Database())); err != nil {
			return err
		}
		bulkDirect = time.Since(t0)
		toInit = slices.DeleteFunc(toInit, func(c *pgtest.Cluster) bool { return c == direct })
	}
	fmt.Printf("pgbench -i -s %d on %d cluster(s) …\n", f.scale, len(toInit))
	if err := initAll(ctx, f, toInit); err != nil {
		return err
	}

	if direct != nil {
		targets = append(targets, &target{name: "direct", dsn: clientDSN(f, direct), dataDirs: []clusterDir{{"db", dataDir(direct), direct.DSN(direct.Database())}}})
	}
	if primary != nil {
		sb, err := startStandby(ctx, primary)
		if err != nil {
			return err
		}
		defer sb.close()
		if err := makeSynchronous(ctx, primary); err != nil {
			return err
		}
		targets = append(targets, &target{name: "sync-rep", dsn: clientDSN(f, primary),
			dataDirs: []clusterDir{{"primary", dataDir(primary), primary.DSN(primary.Database())},
				// No dsn: PostgreSQL 15's pg_stat_wal does not count the walreceiver's flushes.
				{"standby", filepath.Join(sb.dir, "data"), ""}}})
	}
	var dual *dualShim
	var shimT *target
	if local != nil {
		if err := installDual(ctx, local, peer, logger); err != nil {
			return err
		}
		localDSN := local.DSN(local.Database())
		if f.localSocket {
			localDSN = local.SocketDSN(local.Database())
		}
		listen := "127.0.0.1:0"
		if f.socket {
			// A short directory: a socket path has at most 107 bytes.
			dir, err := os.MkdirTemp("", "pgbench-shim-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			listen = filepath.Join(dir, ".s.PGSQL.6432")
		}
		dual, err = startDual(ctx, listen, localDSN, localDSN, peer.DSN(peer.Database()), f.peerConns, logger)
		if err != nil {
			return err
		}
		defer func() {
			if dual != nil {
				dual.stop()
			}
		}()
		if f.bulk {
			if err := bulkLoad(ctx, f, dual, local, peer, bulkDirect); err != nil {
				return err
			}
		}
		shimT = &target{name: "shim", dsn: dual.dsn(local.Database()), dataDirs: []clusterDir{{"local", dataDir(local), local.DSN(local.Database())}, {"peer", dataDir(peer), peer.DSN(peer.Database())}}}
		targets = append(targets, shimT)
	}
	fmt.Printf("set-up took %v\n", time.Since(start).Round(100*time.Millisecond))

	profDir := f.profDir
	if profDir == "" {
		if profDir, err = os.MkdirTemp("", "pgbench-prof-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(profDir, 0o755); err != nil {
		return err
	}
	var cpuProfiles []string

	fmt.Printf("pgbench -n -M %s -c %d -j %d -T %d, scale %d, fsync on, %d round(s)\n", f.mode, f.clients, f.jobs, f.seconds, f.scale, f.rounds)
	switch {
	case f.socket:
		fmt.Println("-socket: pgbench reaches every database and the shim, and the shim its local database, over Unix sockets")
	case local != nil:
		via := "TCP on 127.0.0.1 (-local-socket: its Unix socket)"
		if f.localSocket {
			via = "its Unix socket (-local-socket)"
		}
		fmt.Printf("clients reach every database and the shim over TCP on 127.0.0.1; the shim reaches its local database over %s\n", via)
	}
	for r := range f.rounds {
		for _, c := range targets {
			var stopProf func()
			if c == shimT {
				path := filepath.Join(profDir, fmt.Sprintf("cpu-shim-%d.pprof", r+1))
				if stopProf, err = startCPUProfile(path); err != nil {
					return err
				}
				cpuProfiles = append(cpuProfiles, path)
			}
			before := dual.statsIf(c == shimT)
			var watch *lockWatch
			if c == shimT {
				watch = watchLocks(ctx, peer, 250*time.Millisecond)
			}
			res := runPgbench(ctx, f, c.dsn, c.dataDirs)
			watched := ""
			if watch != nil {
				watched = watch.finish()
			}
			if stopProf != nil {
				stopProf()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.results = append(c.results, res)
			if res.err != nil {
				fmt.Printf("  round %d %-8s error: %v\n", r+1, c.name, res.err)
				continue
			}
			fmt.Printf("  round %d %-8s %8.1f tps  %7.2f ms avg latency  %d txns, %d failed\n", r+1, c.name, res.tps, res.latencyMS, res.txns, res.failed)
			if c == shimT {
				after := dual.statsIf(true)
				fmt.Printf("           shim: %d dual, %d solo, %d plain commits, %d peer errors, %d unwrapped; peer: %s\n",
					after.CommitsDual-before.CommitsDual, after.CommitsSolo-before.CommitsSolo,
					after.CommitsPlain-before.CommitsPlain, after.PeerErrors-before.PeerErrors, after.Unwrapped-before.Unwrapped,
					peerState(ctx, peer))
				fmt.Printf("           %s\n", watched)
				if m, _ := dual.shim.Mode(); m != txshim.ModeDual {
					fmt.Printf("           the shim is in %s mode now (a peer prepare failed); later rounds run so\n", m)
				}
			}
		}
	}

	var peerSummary string
	peerOK := true
	if dual != nil {
		n, mean, p50, p99 := dual.peer.summary()
		peerSummary = fmt.Sprintf("peer Prepare (wait for the decoder + a peer connection + apply round trip), %d calls: mean %v, p50 %v, p99 %v",
			n, mean.Round(time.Microsecond), p50.Round(time.Microsecond), p99.Round(time.Microsecond))
		left, _ := dual.waitDrained(ctx, 15*time.Second)
		if err := waitSlotConfirmed(ctx, local, 10*time.Second); err != nil {
			fmt.Printf("note: %v; the counting run may see transactions again\n", err)
		}
		err := dual.stop()
		dual = nil
		if err != nil {
			fmt.Printf("shim stopped with: %v\n", err)
		}
		if left > 0 {
			peerOK = false
			fmt.Printf("note: %d stream entries still unconfirmed by the peer when the shim stopped; peer: %s\n", left, peerState(ctx, peer))
		}
		a, b, cerr := compareDatabases(ctx, local, peer)
		switch {
		case cerr != nil:
			fmt.Printf("compare databases: %v\n", cerr)
		case a == b && strings.HasSuffix(a, "/0"):
			fmt.Printf("check: local and peer identical (sum(abalance)/history rows/prepared: %s)\n", a)
		default:
			fmt.Printf("check: DIFFER: local %s, peer %s (sum(abalance)/history rows/prepared)\n", a, b)
		}
	}

	report(os.Stdout, f, targets)
	if peerSummary != "" {
		fmt.Println()
		fmt.Println(peerSummary)
	}
	if len(cpuProfiles) > 0 {
		fmt.Printf("\nCPU profile of this process (shim + shipper + pgx) during the shim run(s), in %s:\n", profDir)
		if out, err := pprofTop(ctx, f.goTool, 15, nil, cpuProfiles...); err != nil {
			fmt.Printf("  %v\n", err)
		} else {
			fmt.Print(indent(out))
		}
		if out, err := pprofTop(ctx, f.goTool, 15, []string{"-cum"}, cpuProfiles...); err == nil {
			fmt.Println("\nsame, by cumulative time:")
			fmt.Print(indent(out))
		}
	}
	if local != nil && f.countSeconds > 0 && !peerOK {
		fmt.Println("\ncounting run skipped: the peer did not catch up, a new shipper would stall on it too")
	} else if local != nil && f.countSeconds > 0 {
		if err := countRun(ctx, f, local, peer, logger, profDir); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Printf("counting run: %v\n", err)
		}
	}
	return nil
}

// bulkLoad runs pgbench -i through the shim on the empty pair and prints its time against
// direct's, this process's peak memory, and the Shipper's view of it: the load's one large
// transaction commits dual, its changes past the spill threshold going through a spill file.
func bulkLoad(ctx context.Context, f flags, dual *dualShim, local, peer *pgtest.Cluster, direct time.Duration) error {
	hwm0 := procStatusKiB("VmHWM")
	before := dual.shim.Stats()
	fmt.Printf("pgbench -i -s %d through the shim (dual) …\n", f.scale)
	t0 := time.Now()
	if err := pgbenchInit(ctx, f, dual.dsn(local.Database())); err != nil {
		return fmt.Errorf("through the shim: %w", err)
	}
	took := time.Since(t0)
	if _, err := dual.waitDrained(ctx, 60*time.Second); err != nil {
		return err
	}
	after, ship := dual.shim.Stats(), dual.shipper.Stats()
	a, b, err := compareDatabases(ctx, local, peer)
	check := fmt.Sprintf("identical (%s)", a)
	switch {
	case err != nil:
		check = err.Error()
	case a != b:
		check = fmt.Sprintf("DIFFER: local %s, peer %s", a, b)
	}
	fmt.Printf("bulk load (pgbench -i -s %d, %d rows in one transaction):\n", f.scale, 100_000*f.scale)
	fmt.Printf("  direct %v, through the shim %v: %.2f× direct's time\n", direct.Round(time.Millisecond), took.Round(time.Millisecond), took.Seconds()/direct.Seconds())
	mode, _ := dual.shim.Mode()
	fmt.Printf("  shim: %d dual, %d solo commits, %s mode now; shipper: %d spilled, %d dropped from the journal\n",
		after.CommitsDual-before.CommitsDual, after.CommitsSolo-before.CommitsSolo, mode, ship.Spilled, ship.Dropped)
	fmt.Printf("  this process's peak RSS: %d MiB before the load, %d MiB after\n", hwm0>>10, procStatusKiB("VmHWM")>>10)
	fmt.Printf("  check: local and peer %s (sum(abalance)/history rows/prepared)\n", check)
	return nil
}

// procStatusKiB reads a kB field of /proc/self/status (0 when it cannot).
func procStatusKiB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var n int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &n)
			return n
		}
	}
	return 0
}

// initAll runs pgbench -i on the clusters, two at a time (the machine may have two cores).
func initAll(ctx context.Context, f flags, cs []*pgtest.Cluster) error {
	sem := make(chan struct{}, 2)
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = pgbenchInit(ctx, f, c.DSN(c.Database()))
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func startCPUProfile(path string) (func(), error) {
	pf, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(pf); err != nil {
		pf.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		pf.Close()
	}, nil
}

// countRun runs the shim once more for a few seconds with counting relays between it and both
// databases and with the block profile on, and prints round trips and blocked time per
// transaction. Its TPS is not comparable: the relays and the profile cost time.
func countRun(ctx context.Context, f flags, local, peer *pgtest.Cluster, logger *slog.Logger, profDir string) error {
	addr := func(c *pgtest.Cluster) string { return fmt.Sprintf("127.0.0.1:%d", c.Port()) }
	lp, err := newCountProxy(addr(local))
	if err != nil {
		return err
	}
	defer lp.Close()
	pp, err := newCountProxy(addr(peer))
	if err != nil {
		return err
	}
	defer pp.Close()
	via := func(p *countProxy, c *pgtest.Cluster) string {
		return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgtest.Superuser, p.addr(), c.Database())
	}
	d, err := startDual(ctx, "127.0.0.1:0", via(lp, local), local.DSN(local.Database()), via(pp, peer), f.peerConns, logger)
	if err != nil {
		return err
	}
	defer d.stop()
	cp, err := newCountProxy(d.shim.Addr().String())
	if err != nil {
		return err
	}
	defer cp.Close()

	fmt.Printf("\ncounting run: %d s through the shim with counting relays and the block profile on (its TPS is not comparable)\n", f.countSeconds)
	runtime.SetBlockProfileRate(1)
	defer runtime.SetBlockProfileRate(0)
	before := d.shim.Stats()
	res := runPgbench(ctx, f, via(cp, local), nil, "-T", fmt.Sprint(f.countSeconds))
	if res.err != nil {
		return res.err
	}
	var text, bin bytes.Buffer
	prof := pprof.Lookup("block")
	prof.WriteTo(&text, 1)
	prof.WriteTo(&bin, 0)
	runtime.SetBlockProfileRate(0)
	after := d.shim.Stats()
	dual := after.CommitsDual - before.CommitsDual
	txns := float64(res.txns)
	fmt.Printf("  %.1f tps, %.2f ms avg latency, %d txns, %d dual commits\n", res.tps, res.latencyMS, res.txns, dual)
	fmt.Printf("  requests per transaction: client→shim %.2f, shim→local %.2f, shipper→peer %.2f (counted Sync/Query messages; connection set-up included)\n",
		float64(cp.requests())/txns, float64(lp.requests())/txns, float64(pp.requests())/txns)
	fmt.Printf("  round trips per transaction: client→shim %.2f, shim→local %.2f, shipper→peer %.2f (requests sent after a reply came: pipelined ones count once)\n",
		float64(cp.turns.Load())/txns, float64(lp.turns.Load())/txns, float64(pp.turns.Load())/txns)
	fmt.Printf("  messages per transaction: client→shim %.1f, shim→local %.1f, shipper→peer %.1f; connections: %d, %d, %d\n",
		float64(cp.msgs.Load())/txns, float64(lp.msgs.Load())/txns, float64(pp.msgs.Load())/txns, cp.conns.Load(), lp.conns.Load(), pp.conns.Load())
	n, mean, p50, p99 := d.peer.summary()
	fmt.Printf("  peer Prepare: %d calls, mean %v, p50 %v, p99 %v\n", n, mean.Round(time.Microsecond), p50.Round(time.Microsecond), p99.Round(time.Microsecond))

	if err := os.WriteFile(filepath.Join(profDir, "block-count-run.pprof"), bin.Bytes(), 0o644); err != nil {
		return err
	}
	names := []string{
		"(*Shipper).waitForPrepare", "(*applyPool).get", "(*session).finishCommit", "(*session).wait",
		"(*Shipper).Prepare",
	}
	blocked, err := blockedIn(text.String(), names)
	if err != nil {
		return err
	}
	fmt.Println("  blocked time (block profile, all goroutines), per transaction:")
	for _, nm := range names {
		fmt.Printf("    %-32s %9.3f ms\n", nm, float64(blocked[nm])/float64(time.Millisecond)/txns)
	}
	fmt.Println("    (waitForPrepare: waiting for the decoder to hand over the gid, or for earlier plain commits;")
	fmt.Println("     applyPool.get: waiting for a free peer connection; session.wait: waiting for local replies)")
	out, err := pprofTop(ctx, f.goTool, 15, nil, filepath.Join(profDir, "block-count-run.pprof"))
	if err == nil {
		fmt.Println("\n  block profile top 15:")
		fmt.Print(indent(out))
	}
	return nil
}

// statsIf returns the shim's counters, or zero ones without a shim or when not asked.
func (d *dualShim) statsIf(ask bool) txshim.Stats {
	if d == nil || !ask {
		return txshim.Stats{}
	}
	return d.shim.Stats()
}

func report(w io.Writer, f flags, targets []*target) {
	fmt.Fprintf(w, "\n%-28s", "")
	for _, c := range targets {
		fmt.Fprintf(w, "%12s", c.name)
	}
	fmt.Fprintln(w)
	row := func(label string, cell func(c *target) (string, bool)) {
		fmt.Fprintf(w, "%-28s", label)
		for _, c := range targets {
			s, ok := cell(c)
			if !ok {
				s = "-"
			}
			fmt.Fprintf(w, "%12s", s)
		}
		fmt.Fprintln(w)
	}
	row("TPS", func(c *target) (string, bool) { t, _, ok := c.best(); return fmt.Sprintf("%.1f", t), ok })
	row("avg latency ms", func(c *target) (string, bool) { _, l, ok := c.best(); return fmt.Sprintf("%.2f", l), ok })
	cpuPer := func(who string) func(c *target) (string, bool) {
		return func(c *target) (string, bool) {
			var cpu time.Duration
			var txns int64
			for _, r := range c.results {
				if r.err == nil {
					cpu += r.cpu[who]
					txns += r.txns
				}
			}
			if txns == 0 {
				return "", false
			}
			return fmt.Sprintf("%.3f", float64(cpu)/float64(time.Millisecond)/float64(txns)), true
		}
	}
	row("CPU ms/txn: postgres", cpuPer("postgres"))
	row("CPU ms/txn: pgbench", cpuPer("pgbench"))
	row("CPU ms/txn: this process", cpuPer("bench"))
	row("CPU busy (of all cores)", func(c *target) (string, bool) {
		var cpu, wall time.Duration
		for _, r := range c.results {
			if r.err == nil {
				for _, v := range r.cpu {
					cpu += v
				}
				wall += r.wall
			}
		}
		if wall == 0 {
			return "", false
		}
		return fmt.Sprintf("%.0f%%", 100*float64(cpu)/float64(wall)/float64(runtime.NumCPU())), true
	})

	row("syscalls/txn, this process", func(c *target) (string, bool) {
		var r, wr, txns int64
		for _, x := range c.results {
			if x.err == nil {
				r, wr, txns = r+x.syscr, wr+x.syscw, txns+x.txns
			}
		}
		if txns == 0 || r+wr == 0 {
			return "", false
		}
		return fmt.Sprintf("%.1fr %.1fw", float64(r)/float64(txns), float64(wr)/float64(txns)), true
	})
	row("context switches/txn, this process", func(c *target) (string, bool) {
		var v, i, txns int64
		for _, x := range c.results {
			if x.err == nil {
				v, i, txns = v+x.csw, i+x.cswInvol, txns+x.txns
			}
		}
		if txns == 0 || v+i == 0 {
			return "", false
		}
		return fmt.Sprintf("%.1fv %.1fi", float64(v)/float64(txns), float64(i)/float64(txns)), true
	})
	row("goroutine runs/txn (est.)", func(c *target) (string, bool) {
		var n, txns int64
		for _, x := range c.results {
			if x.err == nil {
				n, txns = n+x.sched, txns+x.txns
			}
		}
		if txns == 0 || n == 0 {
			return "", false
		}
		return fmt.Sprintf("%.1f", float64(n)/float64(txns)), true
	})
	walPer := func(c *target) (map[string]float64, bool) {
		sum := map[string]int64{}
		var txns int64
		for _, r := range c.results {
			if r.err == nil && len(r.walSync) > 0 {
				for k, v := range r.walSync {
					sum[k] += v
				}
				txns += r.txns
			}
		}
		if txns == 0 {
			return nil, false
		}
		out := map[string]float64{}
		for k, v := range sum {
			out[k] = float64(v) / float64(txns)
		}
		return out, true
	}
	row("WAL flushes/txn (all clusters)", func(c *target) (string, bool) {
		per, ok := walPer(c)
		var all float64
		for _, v := range per {
			all += v
		}
		return fmt.Sprintf("%.2f", all), ok
	})
	fmt.Fprintln(w, "\nWAL flushes to disk per transaction by cluster (pg_stat_wal.wal_sync; PREPARE TRANSACTION and")
	fmt.Fprintln(w, "COMMIT PREPARED each flush, whatever synchronous_commit says; concurrent commits share a flush;")
	fmt.Fprintln(w, "a standby's walreceiver flushes are not counted there):")
	for _, c := range targets {
		per, ok := walPer(c)
		if !ok {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(per)) {
			parts = append(parts, fmt.Sprintf("%s %.2f", k, per[k]))
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.name+":", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w, "\npostgres CPU ms/txn by cluster and process (≥ 0.005):")
	for _, c := range targets {
		sum := map[string]time.Duration{}
		var txns int64
		for _, r := range c.results {
			if r.err == nil {
				for k, v := range r.pgCPU {
					sum[k] += v
				}
				txns += r.txns
			}
		}
		if txns == 0 {
			continue
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(sum)) {
			if v := float64(sum[k]) / float64(time.Millisecond) / float64(txns); v >= 0.005 {
				parts = append(parts, fmt.Sprintf("%s %.3f", k, v))
			}
		}
		fmt.Fprintf(w, "  %-10s %s\n", c.name+":", strings.Join(parts, ", "))
	}

	var direct, rep, shim *target
	for _, c := range targets {
		switch c.name {
		case "direct":
			direct = c
		case "sync-rep":
			rep = c
		case "shim":
			shim = c
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "ratios vs direct (target or reference in brackets):")
	ratio := func(c *target) (float64, float64, bool) {
		if direct == nil || c == nil {
			return 0, 0, false
		}
		dt, dl, ok1 := direct.best()
		ct, cl, ok2 := c.best()
		if !ok1 || !ok2 || dt == 0 {
			return 0, 0, false
		}
		return ct / dt, cl / dl, true
	}
	if r, l, ok := ratio(shim); ok {
		verdict := "ok"
		if r < targetShim {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "  %-40s %.2f×  %s  (latency %.2f×)\n", fmt.Sprintf("shim/direct TPS [≥ %.2f×]", targetShim), r, verdict, l)
	} else {
		fmt.Fprintf(w, "  %-40s n/a\n", fmt.Sprintf("shim/direct TPS [≥ %.2f×]", targetShim))
	}
	if r, l, ok := ratio(rep); ok {
		fmt.Fprintf(w, "  %-40s %.2f×  (latency %.2f×)\n", fmt.Sprintf("sync-rep/direct TPS [ref ~%.2f×]", referenceRep), r, l)
	}
	if d, sh, ok := ceiling(direct, shim); ok {
		fmt.Fprintf(w, "  %-40s %.2f×  (PostgreSQL's CPU per transaction alone is %.1f× direct's)\n",
			"shim ceiling: its process free [bound]", sh/d, ceilingPG(direct, shim))
	}
	if shim != nil && rep != nil {
		st, _, ok1 := shim.best()
		rt, _, ok2 := rep.best()
		if ok1 && ok2 && rt > 0 {
			fmt.Fprintf(w, "  %-40s %.2f×\n", "shim/sync-rep TPS", st/rt)
		}
	}
}

// cpuMs returns c's CPU milliseconds per transaction, of the given kinds (all when none), and
// how busy its runs kept the machine's cores (0..1).
func cpuMs(c *target, kinds ...string) (ms, busy float64, ok bool) {
	var cpu, all, wall time.Duration
	var txns int64
	for _, r := range c.results {
		if r.err != nil {
			continue
		}
		for k, v := range r.cpu {
			all += v
			if len(kinds) == 0 || slices.Contains(kinds, k) {
				cpu += v
			}
		}
		wall += r.wall
		txns += r.txns
	}
	if txns == 0 || wall == 0 {
		return 0, 0, false
	}
	return float64(cpu) / float64(time.Millisecond) / float64(txns), float64(all) / float64(wall) / float64(runtime.NumCPU()), true
}

// ceiling bounds what the shim could reach on this machine: the TPS of direct and of the shim
// were the shim's own process free (CPU-bound runs: TPS ≈ cores × busy ÷ CPU per transaction),
// both at the busy share each run reached.
func ceiling(direct, shim *target) (d, sh float64, ok bool) {
	if direct == nil || shim == nil {
		return 0, 0, false
	}
	dms, dbusy, ok1 := cpuMs(direct)
	sms, sbusy, ok2 := cpuMs(shim, "postgres", "pgbench")
	if !ok1 || !ok2 || dms == 0 || sms == 0 {
		return 0, 0, false
	}
	n := float64(runtime.NumCPU()) * 1000
	return n * dbusy / dms, n * sbusy / sms, true
}

// ceilingPG is the shim's PostgreSQL CPU per transaction (both databases, the walsender) over
// direct's.
func ceilingPG(direct, shim *target) float64 {
	d, _, _ := cpuMs(direct, "postgres")
	s, _, _ := cpuMs(shim, "postgres")
	if d == 0 {
		return 0
	}
	return s / d
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// clientDSN is where pgbench reaches c: over TCP, or with -socket its Unix socket.
func clientDSN(f flags, c *pgtest.Cluster) string {
	if f.socket {
		return c.SocketDSN(c.Database())
	}
	return c.DSN(c.Database())
}
