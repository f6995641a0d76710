package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is what one pgbench run reported, plus the CPU time spent around it.
type result struct {
	tps       float64 // without initial connection time
	latencyMS float64 // average
	txns      int64   // processed
	failed    int64

	wall time.Duration
	cpu  map[string]time.Duration // by consumer: pgbench, postgres, bench (this process)
	// pgCPU splits the postgres CPU time by cluster role and process kind ("local walsender").
	pgCPU map[string]time.Duration
	// syscalls of this process during the run: read and write calls (/proc/self/io).
	syscr, syscw int64
	// csw: the context switches of this process's threads during the run (getrusage), voluntary
	// ones (a thread went to sleep: waiting in epoll or on a futex) and not; sched: the times a
	// goroutine of this process was made to run from runnable (runtime/metrics
	// /sched/latencies:seconds, which the runtime samples one in gTrackingPeriod, 8).
	csw, cswInvol, sched int64
	// walSync: WAL flushes to disk during the run, by cluster role (pg_stat_wal.wal_sync).
	walSync map[string]int64
	err     error
}

var (
	reTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	reLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	reTxns    = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	reFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// parsePgbench reads the summary pgbench prints at the end of a run.
func parsePgbench(out string) (result, error) {
	var r result
	m := reTPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no tps line in pgbench output")
	}
	r.tps, _ = strconv.ParseFloat(m[1], 64)
	if m = reLatency.FindStringSubmatch(out); m == nil {
		return r, fmt.Errorf("no latency line in pgbench output")
	}
	r.latencyMS, _ = strconv.ParseFloat(m[1], 64)
	if m = reTxns.FindStringSubmatch(out); m == nil {
		return r, fmt.Errorf("no transaction count in pgbench output")
	}
	r.txns, _ = strconv.ParseInt(m[1], 10, 64)
	if m = reFailed.FindStringSubmatch(out); m != nil {
		r.failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// runPgbench runs the TPC-B-like script against dsn and measures the CPU time pgbench, the
// given PostgreSQL clusters (by data directory) and this process spent meanwhile.
func runPgbench(ctx context.Context, f flags, dsn string, dataDirs []clusterDir, extra ...string) result {
	args := []string{"-n", "-M", f.mode, "-c", strconv.Itoa(f.clients), "-j", strconv.Itoa(f.jobs)}
	args = append(args, extra...)
	if len(extra) == 0 {
		args = append(args, "-T", strconv.Itoa(f.seconds))
	}
	args = append(args, dsn)
	cmd := exec.CommandContext(ctx, f.pgbench, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out

	walBefore := walSyncs(ctx, dataDirs)
	pgBefore := clusterCPU(dataDirs)
	selfBefore := selfCPU()
	rBefore, wBefore := selfSyscalls()
	cswBefore, invBefore := selfSwitches()
	schedBefore := selfSchedules()
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	selfAfter := selfCPU()
	rAfter, wAfter := selfSyscalls()
	cswAfter, invAfter := selfSwitches()
	schedAfter := selfSchedules()
	// Let the postmasters reap the backends that just ended, so their time is in cutime.
	time.Sleep(300 * time.Millisecond)
	pgAfter := clusterCPU(dataDirs)
	walAfter := walSyncs(ctx, dataDirs)

	if err != nil {
		return result{err: fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, tail(out.String(), 2000))}
	}
	r, perr := parsePgbench(out.String())
	if perr != nil {
		return result{err: fmt.Errorf("%w:\n%s", perr, tail(out.String(), 2000))}
	}
	r.wall = wall
	r.pgCPU = map[string]time.Duration{}
	var pg time.Duration
	for k, v := range pgAfter {
		r.pgCPU[k] = v - pgBefore[k]
		pg += v - pgBefore[k]
	}
	r.cpu = map[string]time.Duration{
		"postgres": pg,
		"bench":    selfAfter - selfBefore,
	}
	r.syscr, r.syscw = rAfter-rBefore, wAfter-wBefore
	r.csw, r.cswInvol, r.sched = cswAfter-cswBefore, invAfter-invBefore, schedAfter-schedBefore
	r.walSync = map[string]int64{}
	for k, v := range walAfter {
		if b, ok := walBefore[k]; ok {
			r.walSync[k] = v - b
		}
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.cpu["pgbench"] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r
}

// pgbenchInit runs pgbench -i (with primary keys, as usual) on dsn.
func pgbenchInit(ctx context.Context, f flags, dsn string) error {
	cmd := exec.CommandContext(ctx, f.pgbench, "-i", "-q", "-s", strconv.Itoa(f.scale), dsn)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i -s %d: %w\n%s", f.scale, err, tail(string(out), 2000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// clockTick is USER_HZ, the unit of the times in /proc/PID/stat (100 on every Linux port
// Go supports).
const clockTick = 10 * time.Millisecond

// clusterDir is a cluster's data directory and the role it plays in a configuration.
type clusterDir struct {
	role string // e.g. "local", "peer", "primary", "standby"
	dir  string
	dsn  string // for pg_stat_wal; "" skips it
}

// walSyncs reads each cluster's count of WAL flushes to disk (pg_stat_wal.wal_sync: fsync or
// fdatasync calls); a cluster it cannot read is left out.
func walSyncs(ctx context.Context, dirs []clusterDir) map[string]int64 {
	out := map[string]int64{}
	for _, d := range dirs {
		if d.dsn == "" {
			continue
		}
		db, err := sql.Open("postgres", d.dsn)
		if err != nil {
			continue
		}
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT wal_sync FROM pg_stat_wal").Scan(&n); err == nil {
			out[d.role] = n
		}
		db.Close()
	}
	return out
}

// clusterCPU sums the CPU time of the postmasters serving the given data directories and of
// their children, by role and process kind: live children from their own counters, ended
// ones ("ended backends") from the postmaster's cutime/cstime.
func clusterCPU(dirs []clusterDir) map[string]time.Duration {
	out := map[string]time.Duration{}
	if len(dirs) == 0 {
		return out
	}
	role := map[string]string{}
	for _, d := range dirs {
		role[filepath.Clean(d.dir)] = d.role
	}
	type proc struct {
		ppid       int
		self, kids time.Duration
		kind       string
	}
	procs := map[int]proc{}
	masters := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		ppid, self, kids, ok := parseStat(string(st))
		if !ok {
			continue
		}
		cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv := strings.Split(string(cl), "\x00")
		for i := 0; i+1 < len(argv); i++ {
			if r, ok := role[filepath.Clean(argv[i+1])]; ok && argv[i] == "-D" {
				masters[pid] = r
			}
		}
		procs[pid] = proc{ppid, self, kids, processKind(argv[0])}
	}
	for pid, p := range procs {
		if r, ok := masters[pid]; ok {
			out[r+" postmaster"] += p.self
			out[r+" ended backends"] += p.kids
		} else if r, ok := masters[p.ppid]; ok {
			out[r+" "+p.kind] += p.self
		}
	}
	return out
}

// processKind names a PostgreSQL child process by its title ("postgres: walwriter",
// "postgres: walsender postgres 127.0.0.1(5432) START_REPLICATION", "postgres: postgres app
// 127.0.0.1(40000) idle"): the auxiliary process's name, or "backend" for a client session.
func processKind(title string) string {
	t, ok := strings.CutPrefix(title, "postgres: ")
	if !ok {
		return "other"
	}
	for _, k := range []string{"walsender", "walwriter", "walreceiver", "checkpointer", "background writer",
		"autovacuum launcher", "autovacuum worker", "logical replication launcher", "startup", "archiver"} {
		if strings.HasPrefix(t, k) {
			return k
		}
	}
	return "backend"
}

// parseStat returns ppid, utime+stime and cutime+cstime from a /proc/PID/stat line.
func parseStat(s string) (ppid int, self, kids time.Duration, ok bool) {
	// The command name (field 2) may hold spaces and parentheses: skip to the last ')'.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime are fields 14..17.
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	n := func(j int) int64 { v, _ := strconv.ParseInt(f[j], 10, 64); return v }
	ppid = int(n(1))
	self = time.Duration(n(11)+n(12)) * clockTick
	kids = time.Duration(n(13)+n(14)) * clockTick
	return ppid, self, kids, true
}

// selfSyscalls returns the read and write system calls this process has made (/proc/self/io).
func selfSyscalls() (r, w int64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			r = n
		case "syscw":
			w = n
		}
	}
	return r, w
}

// selfSwitches returns the voluntary and involuntary context switches of all this process's
// threads so far.
func selfSwitches() (vol, invol int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return ru.Nvcsw, ru.Nivcsw
}

// selfSchedules returns how many times so far a goroutine of this process was made to run from
// runnable, estimated from the runtime's sampled scheduling-latency histogram (one goroutine
// transition in 8 is recorded).
func selfSchedules() int64 {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	var n uint64
	for _, c := range s[0].Value.Float64Histogram().Counts {
		n += c
	}
	return int64(n) * 8
}

// selfCPU is the CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
