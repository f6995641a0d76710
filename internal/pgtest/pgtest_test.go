package pgtest

import (
	"bufio"
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func queryString(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func TestStartSettingsKillRestart(t *testing.T) {
	start := time.Now()
	c := Start(t, WithDatabase("bank"), WithSetting("max_wal_senders", "7"), WithMaxPreparedTransactions(9))
	t.Logf("cluster ready in %v on port %d", time.Since(start), c.Port())

	db := c.Open(t, "bank")
	for q, want := range map[string]string{
		"SHOW wal_level":                 "logical",
		"SHOW max_prepared_transactions": "9",
		"SHOW max_wal_senders":           "7",
		"SHOW fsync":                     "on",
		"SHOW listen_addresses":          "127.0.0.1",
		"SELECT current_database()":      "bank",
		"SELECT current_user":            Superuser,
	} {
		if got := queryString(t, db, q); got != want {
			t.Errorf("%s = %q, want %q", q, got, want)
		}
	}
	if os.Geteuid() == 0 {
		st, err := os.Stat(c.Dir() + "/data/PG_VERSION")
		if err != nil {
			t.Fatal(err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; uid == 0 {
			t.Errorf("data dir owned by root; want the postgres OS user")
		}
	}

	c.Exec(t, "CREATE TABLE t (id int PRIMARY KEY)")
	c.Exec(t, "INSERT INTO t VALUES (1), (2)")

	c.Kill()
	if err := db.Ping(); err == nil {
		// database/sql may reuse a dead conn once; a second ping must fail.
		if err := db.Ping(); err == nil {
			t.Fatal("ping succeeded after Kill")
		}
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	// Committed rows survive the crash (fsync = on, crash recovery on restart).
	if got := queryString(t, db, "SELECT count(*)::text FROM t"); got != "2" {
		t.Errorf("rows after kill+restart = %s, want 2", got)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, db, "SELECT count(*)::text FROM t"); got != "2" {
		t.Errorf("rows after stop+restart = %s, want 2", got)
	}
	dir := c.Dir()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster dir %s still there after Close: %v", dir, err)
	}
}

// TestKillReturnsPromptly: Kill waits for the killed backends to be gone, not for pid 1 to reap
// them (they are its children once the postmaster is dead): a zombie holds no shared memory, and
// where pid 1 reaps slowly (seen: about 2 s on this project's test machine) waiting for that made
// every Kill take as long. The shared memory is free when it returns (nothing attached), so a
// start right after it, the first and only one (Restart would try again), succeeds.
func TestKillReturnsPromptly(t *testing.T) {
	c := Start(t)
	for i := range 3 {
		id := shmemID(t, c.dataDir())
		start := time.Now()
		c.Kill()
		if d := time.Since(start); d > time.Second {
			t.Errorf("kill %d took %v", i, d)
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err == nil && desc.Nattch != 0 {
			t.Errorf("kill %d returned with %d processes attached to the shared memory segment", i, desc.Nattch)
		}
		if err := c.start(); err != nil {
			t.Fatalf("start after kill %d: %v", i, err)
		}
	}
	c.Exec(t, "SELECT 1")
}

// TestPauseResume: a paused cluster answers nothing, on a connection opened before the pause
// as on a new one, and a paused cluster still stops.
func TestPauseResume(t *testing.T) {
	c := Start(t)
	db := c.Open(t, c.Database())
	db.SetMaxOpenConns(2)
	if got := queryString(t, db, "SELECT 'up'"); got != "up" {
		t.Fatalf("before the pause: %q", got)
	}
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 2)
	for range 2 { // the idle connection, then a new one
		go func() {
			var s string
			if err := db.QueryRow("SELECT 'thawed'").Scan(&s); err != nil {
				s = err.Error()
			}
			answered <- s
		}()
	}
	select {
	case s := <-answered:
		t.Fatalf("a paused cluster answered %q", s)
	case <-time.After(time.Second):
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case s := <-answered:
			if s != "thawed" {
				t.Errorf("after Resume: %q", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no answer 10 s after Resume")
		}
	}
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("stopping a paused cluster took %v", d)
	}
}

func TestPasswordUser(t *testing.T) {
	for _, method := range []string{"scram-sha-256", "md5"} {
		t.Run(method, func(t *testing.T) {
			c := Start(t, WithPasswordUser("alice", "s3cret'x", method))
			good, err := sql.Open("postgres", c.UserDSN("alice", "s3cret'x", c.Database()))
			if err != nil {
				t.Fatal(err)
			}
			defer good.Close()
			if got := queryString(t, good, "SELECT current_user"); got != "alice" {
				t.Errorf("current_user = %q", got)
			}
			su := c.Open(t, c.Database())
			want := "SCRAM-SHA-256$"
			if method == "md5" {
				want = "md5"
			}
			if got := queryString(t, su, "SELECT rolpassword FROM pg_authid WHERE rolname = 'alice'"); !strings.HasPrefix(got, want) {
				t.Errorf("stored password %.14q…, want prefix %q", got, want)
			}
			bad, err := sql.Open("postgres", c.UserDSN("alice", "wrong", c.Database()))
			if err != nil {
				t.Fatal(err)
			}
			defer bad.Close()
			if err := bad.Ping(); err == nil || !strings.Contains(err.Error(), "password") {
				t.Errorf("wrong password: err = %v, want password authentication failure", err)
			}
		})
	}
}

func TestFindBin(t *testing.T) {
	dir, err := findBin()
	if err != nil {
		t.Skip(err)
	}
	for _, b := range []string{"initdb", "postgres"} {
		if !isExec(dir + "/" + b) {
			t.Errorf("%s/%s is not executable", dir, b)
		}
	}
}

// TestFreePort: ports are free for TCP and UDP, never handed out twice, and outside the
// kernel's ephemeral range when it leaves room below it (so that no outgoing connection takes
// one while its server restarts).
func TestFreePort(t *testing.T) {
	lo, _, ok := ephemeralRange()
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if ok && lo > 21000 && p >= lo {
			t.Errorf("port %d is in the ephemeral range (from %d)", p, lo)
		}
		if !portFree(p) {
			t.Errorf("port %d is not free", p)
		}
	}
}

// TestPortClaimedElsewhere: a port another test process handed out is not handed out here
// while that process lives, and is once it has ended.
func TestPortClaimedElsewhere(t *testing.T) {
	if os.Getenv("PGTEST_CLAIM_CHILD") != "" {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("claimed", p)
		io.ReadAll(os.Stdin) // hold it until the parent closes stdin
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("claims across processes are Linux's abstract Unix sockets")
	}
	child := exec.Command(os.Args[0], "-test.run=^TestPortClaimedElsewhere$")
	child.Env = append(os.Environ(), "PGTEST_CLAIM_CHILD=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer stdin.Close()
	var port int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "claimed %d", &port); err == nil {
			break
		}
	}
	if port == 0 {
		t.Fatal("the child claimed no port")
	}
	if ClaimPort(port) {
		t.Fatalf("port %d, claimed by another process, was handed out here too", port)
	}
	stdin.Close() // what the child prints after this fits in the pipe
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if !ClaimPort(port) {
		t.Fatalf("port %d still refused after the process that claimed it ended", port)
	}
}

func TestMain(m *testing.M) { os.Exit(RunTests(m)) }

// TestTemplateCopies: under RunTests, clusters are copies of one template data directory,
// which stays as initdb left it, and each copy is a cluster of its own.
func TestTemplateCopies(t *testing.T) {
	a, b := Start(t), Start(t)
	template.Lock()
	dir := template.dir
	template.Unlock()
	if dir == "" {
		t.Fatal("no template was made")
	}
	for _, f := range []string{"postmaster.pid", "pgtest.conf"} {
		if _, err := os.Stat(dir + "/data/" + f); !os.IsNotExist(err) {
			t.Errorf("template has %s (%v): a cluster ran in it", f, err)
		}
	}
	a.Exec(t, "CREATE TABLE only_a (id int)")
	if got := queryString(t, b.Open(t, b.Database()), "SELECT coalesce(to_regclass('only_a')::text, 'none')"); got != "none" {
		t.Errorf("a table made on one copy is on the other: %s", got)
	}
}

// TestClusterDiesWithItsProcess: a test process that dies without its cleanups (go test's
// -timeout, kill -9) takes its clusters with it: none is left running, holding its port and
// shared memory, after the process is gone; and the next cluster made removes their
// directories and the template.
func TestClusterDiesWithItsProcess(t *testing.T) {
	if os.Getenv("PGTEST_ORPHAN_HELPER") != "" {
		// The helper: start a cluster, say which, and wait to be killed.
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		pid := c.cmd.Process.Pid
		c.mu.Unlock()
		template.Lock()
		tmpl := template.dir
		template.Unlock()
		other, _, err := TempDir("orphan-")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("ORPHAN %d %s %s %s\n", pid, c.Dir(), tmpl, other)
		_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin if it gives up
		c.Close()
		return
	}
	f, kill := Orphaned(t, "TestClusterDiesWithItsProcess", "PGTEST_ORPHAN_HELPER", 60*time.Second)
	if len(f) < 4 {
		t.Fatalf("the helper started no cluster (said %q)", f)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // whatever the outcome, nothing of the helper's stays
		if t.Failed() && alive(pid) { // once it has ended, pid may be another process's
			kids, _ := children(pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			for _, k := range kids {
				_ = syscall.Kill(k, syscall.SIGKILL)
			}
		}
		for _, d := range f[1:] {
			os.RemoveAll(d)
		}
	})
	if !alive(pid) {
		t.Fatalf("the helper's postmaster %d is not running", pid)
	}
	shmid := shmemID(t, filepath.Join(f[1], "data"))

	kill()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("postmaster %d still runs 10 s after its test process was killed", pid)
	}
	// The next cluster made removes what the killed process left: its cluster, its template
	// and its TempDir.
	Start(t)
	for _, d := range f[1:] {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s, left by the killed process, is still there after the next New (%v)", d, err)
		}
	}
	var desc unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(shmid, unix.IPC_STAT, &desc); err == nil {
		unix.SysvShmCtl(shmid, unix.IPC_RMID, nil)
		t.Errorf("the killed cluster's shared memory segment %d is still there after the next New", shmid)
	}
}

// TestPausedClusterDiesWithItsProcess: a test process killed while one of its clusters is
// paused (go test's -timeout during a frozen-peer test) leaves nothing for good. Its postmaster
// dies with it, but the backends and auxiliary processes, stopped and now children of pid 1,
// would stay stopped forever, holding the cluster's shared memory segment: the next cluster
// made ends them, and removes the segment and the directory; also when an earlier sweep (one
// that knew nothing of them, or another process's, between this one's steps) removed the
// directory around them.
func TestPausedClusterDiesWithItsProcess(t *testing.T) {
	if os.Getenv("PGTEST_PAUSED_ORPHAN_HELPER") != "" {
		c, err := New()
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		pid := c.cmd.Process.Pid
		c.mu.Unlock()
		if err := c.Pause(); err != nil {
			c.Close()
			t.Fatal(err)
		}
		template.Lock()
		tmpl := template.dir
		template.Unlock()
		fmt.Printf("ORPHAN %d %s %s\n", pid, c.Dir(), tmpl)
		_, _ = io.Copy(io.Discard, os.Stdin) // the parent closes stdin if it gives up
		c.Close()
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("the postmaster dies with its process only on Linux (Pdeathsig)")
	}
	for _, removed := range []bool{false, true} {
		t.Run(fmt.Sprintf("removed=%v", removed), func(t *testing.T) { pausedOrphans(t, removed) })
	}
}

// pausedOrphans is TestPausedClusterDiesWithItsProcess with the killed process's cluster
// directory removed before the next New, or not.
func pausedOrphans(t *testing.T, removed bool) {
	f, kill := Orphaned(t, "TestPausedClusterDiesWithItsProcess", "PGTEST_PAUSED_ORPHAN_HELPER", 60*time.Second)
	if len(f) < 3 {
		t.Fatalf("the helper started no cluster (said %q)", f)
	}
	data := filepath.Join(f[1], "data")
	key, shmid := -1, -1
	t.Cleanup(func() { // whatever the outcome, nothing of the helper's stays
		kill()
		left := procsIn(data)
		for _, p := range left {
			_ = syscall.Kill(p, syscall.SIGKILL)
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, p := range left {
			for alive(p) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(shmid, unix.IPC_STAT, &desc); err == nil && desc.Perm.Key == int32(key) {
			unix.SysvShmCtl(shmid, unix.IPC_RMID, nil)
		}
		for _, d := range f[1:] {
			os.RemoveAll(d)
		}
	})
	pm, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatal(err)
	}
	kids, err := children(pm)
	if err != nil {
		t.Fatal(err)
	}
	key, shmid = shmemKeyID(t, data)
	var running []int
	for _, p := range kids {
		if alive(p) {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		t.Fatalf("the paused postmaster %d has no children", pm)
	}

	kill()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pm) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pm) {
		t.Errorf("postmaster %d still runs 10 s after its test process was killed", pm)
	}
	if removed {
		if err := os.RemoveAll(f[1]); err != nil {
			t.Fatal(err)
		}
	}
	Start(t)
	// Another test process's sweep (go test runs packages side by side) may have found the
	// leftover first and be killing it while this one's New skipped it (locked): what is left
	// is looked at again until that sweep's own bound (waitGone's 5 s, releaseSegment's 10 s)
	// has passed. Without the sweep the paused processes stay stopped for good.
	var problems []string
	for wait := time.Now().Add(16 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		problems = problems[:0]
		var left []string
		for _, p := range running {
			if inDir(p, data) && alive(p) {
				left = append(left, fmt.Sprintf("%d (%s)", p, procState(p)))
			}
		}
		if len(left) > 0 {
			problems = append(problems, fmt.Sprintf("%d of the paused cluster's %d processes still run after the next New: %v", len(left), len(running), left))
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(shmid, unix.IPC_STAT, &desc); err == nil && desc.Perm.Key == int32(key) {
			problems = append(problems, fmt.Sprintf("the paused cluster's shared memory segment %d (%d attached) is still there after the next New", shmid, desc.Nattch))
		}
		for _, d := range f[1:] {
			if _, err := os.Stat(d); !os.IsNotExist(err) {
				problems = append(problems, fmt.Sprintf("%s, left by the killed process, is still there after the next New (%v)", d, err))
			}
		}
		if len(problems) == 0 || time.Now().After(wait) {
			break
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// inDir tells whether process pid works in dir (or did, before dir was removed).
func inDir(pid int, dir string) bool {
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return err == nil && (cwd == dir || cwd == dir+" (deleted)")
}

// procsIn lists the processes that work in dir (or did, before dir was removed).
func procsIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && inDir(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procState is the state letter of process pid (R, S, T, Z…), or "gone".
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "gone"
	}
	if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// shmemID returns the System V shared memory id that the postmaster.pid in dataDir names.
func shmemID(t *testing.T, dataDir string) int {
	t.Helper()
	_, id := shmemKeyID(t, dataDir)
	return id
}

// shmemKeyID returns the System V shared memory key and id that the postmaster.pid in dataDir
// names.
func shmemKeyID(t *testing.T, dataDir string) (key, id int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		t.Fatalf("postmaster.pid has %d lines, want the shared memory key and id on line 7", len(lines))
	}
	if _, err := fmt.Sscan(lines[6], &key, &id); err != nil {
		t.Fatalf("postmaster.pid line 7 %q: %v", lines[6], err)
	}
	return key, id
}

// TestFailedStartLeavesNothing: when making a cluster fails after its server started (here the
// password user's name is one PostgreSQL reserves), New stops that server as it removes the
// directory, rather than leaving it running on a deleted one.
func TestFailedStartLeavesNothing(t *testing.T) {
	before, err := children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Only the segments of the postmaster this New starts: other packages' tests, run beside
	// this one, kill clusters whose segments their own cleanup removes a moment later.
	var mu sync.Mutex
	var started []int
	startedHook = func(pid int) { mu.Lock(); started = append(started, pid); mu.Unlock() }
	defer func() { startedHook = nil }()
	c, newErr := New(WithPasswordUser("pg_reserved", "x", "scram-sha-256"))
	if newErr == nil {
		c.Close()
		t.Fatal("New made a cluster with a reserved role name")
	}
	if !strings.Contains(newErr.Error(), "create password user") {
		t.Fatalf("New failed before its server ran: %v", newErr)
	}
	after, err := children(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range after {
		if !slices.Contains(before, pid) && alive(pid) {
			kids, _ := children(pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			for _, k := range kids {
				_ = syscall.Kill(k, syscall.SIGKILL)
			}
			t.Errorf("New failed (%v) and left process %d running", newErr, pid)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(started) == 0 {
		t.Fatal("New started no postmaster")
	}
	for id, cpid := range orphanSegments(t) {
		if slices.Contains(started, cpid) {
			unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			t.Errorf("New failed (%v) and left shared memory segment %d, its postmaster %d gone", newErr, id, cpid)
		}
	}
}

// orphanSegments returns the System V shared memory segments nothing is attached to whose
// creator is gone, from /proc/sysvipc/shm: what a killed postmaster leaves; by id, its
// creator's pid.
func orphanSegments(t *testing.T) map[int]int {
	t.Helper()
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		t.Skipf("no /proc/sysvipc/shm: %v", err)
	}
	segs := map[int]int{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line) // key shmid perms size cpid lpid nattch …
		if len(f) < 7 {
			continue
		}
		id, err1 := strconv.Atoi(f[1])
		cpid, err2 := strconv.Atoi(f[4])
		if err1 == nil && err2 == nil && f[6] == "0" && !alive(cpid) {
			segs[id] = cpid
		}
	}
	return segs
}

// TestTempDirRemovesLeftovers: TempDir removes a marked directory no process holds (one whose
// process died before release), and leaves alone one a living process holds: a test process
// that starts no cluster sweeps what a killed one left too.
func TestTempDirRemovesLeftovers(t *testing.T) {
	left, _, err := TempDir("left-")
	if err != nil {
		t.Fatal(err)
	}
	disown(left) // unlocked, as by its process's death, and not removed
	held, release, err := TempDir("held-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(left)
		release()
	})
	_, release2, err := TempDir("next-")
	if err != nil {
		t.Fatal(err)
	}
	release2()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s, which no process holds, is still there after the next TempDir (%v)", left, err)
	}
	if _, err := os.Stat(held); err != nil {
		t.Errorf("%s, held by this process, was removed by the next TempDir: %v", held, err)
	}
}

// TestOwnershipOutlivesGC: a cluster whose *Cluster its user dropped, keeping only its DSN,
// stays locked: were the garbage collector to unlock it, the next New in any process would
// take it for a leftover and remove it while it runs.
func TestOwnershipOutlivesGC(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Dir()
	t.Cleanup(func() {
		killLeftover(dir)
		os.RemoveAll(dir)
		disown(dir)
	})
	c = nil
	for range 20 {
		runtime.GC() // finalizers of what it frees run after it, on their own goroutine
		time.Sleep(10 * time.Millisecond)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		t.Errorf("%s is unlocked once its *Cluster was collected: another process would remove it", dir)
	}
}

// TestCloseReleasesSharedMemory: Close leaves no System V shared memory segment behind, also
// after Kill (a killed postmaster cannot remove its own).
func TestCloseReleasesSharedMemory(t *testing.T) {
	for _, kill := range []bool{false, true} {
		c, err := New()
		if errors.Is(err, ErrNoPostgres) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(c.Dir(), "data", "postmaster.pid"))
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		var key, id int
		if len(lines) < 7 {
			c.Close()
			t.Fatalf("postmaster.pid has %d lines, want the shared memory key and id on line 7", len(lines))
		}
		if _, err := fmt.Sscan(lines[6], &key, &id); err != nil {
			c.Close()
			t.Fatalf("postmaster.pid line 7 %q: %v", lines[6], err)
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
			c.Close()
			t.Fatalf("shared memory segment %d of the running cluster: %v", id, err)
		}
		if kill {
			c.Kill()
		}
		if err := c.Close(); err != nil {
			t.Errorf("kill %v: close: %v", kill, err)
		}
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err == nil {
			unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			t.Errorf("kill %v: shared memory segment %d (key %d) is still there after Close", kill, id, key)
		}
	}
}

// TestRoot: a test process's clusters go to PGTEST_ROOT when it is set, else to the tmpfs
// when it has room and runs programs (on disk a cluster's start costs ten times the CPU), else the temp dir.
// Without PGTEST_ROOT for the first part, which the suite may run with (README: PGTEST_ROOT=/tmp).
func TestRoot(t *testing.T) {
	t.Setenv(RootEnv, "")
	want := os.TempDir()
	var st unix.Statfs_t
	if unix.Statfs(shmRoot, &st) == nil && st.Type == unix.TMPFS_MAGIC && uint64(st.Bavail)*uint64(st.Bsize) >= shmRoomMin && st.Flags&unix.ST_NOEXEC == 0 {
		want = shmRoot
	}
	if c := Start(t); filepath.Dir(c.Dir()) != want {
		t.Errorf("cluster in %s, want it in %s", c.Dir(), want)
	}
	dir := t.TempDir()
	t.Setenv(RootEnv, dir)
	if got := root(); got != dir {
		t.Errorf("with %s=%s clusters go to %s", RootEnv, dir, got)
	}
}

// TestTempDirRunsPrograms: a program written to a TempDir runs (the end-to-end tests build
// tandem and the wire server into one and run them), also where /dev/shm is a tmpfs mounted
// noexec, as container runtimes and hardened hosts mount it.
func TestTempDirRunsPrograms(t *testing.T) {
	dir, release, err := TempDir("exec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(prog).CombinedOutput(); err != nil {
		t.Errorf("run a program in %s: %v\n%s", dir, err, out)
	}
}

// TestRootRelative: a relative PGTEST_ROOT is taken from the directory the test process
// started in; the cluster's commands run in its own directory, where a relative one would
// name nothing.
func TestRootRelative(t *testing.T) {
	dir, release, err := TempDir("rel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	if err := os.Mkdir(filepath.Join(dir, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the cluster's user goes through it
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv(RootEnv, "root")
	c := Start(t)
	if want := filepath.Join(dir, "root"); filepath.Dir(c.Dir()) != want {
		t.Errorf("cluster in %s, want it in %s", c.Dir(), want)
	}
	c.Exec(t, `SELECT 1`)
}

// TestKilledLeavesNoSharedMemory: a server killed -9 and then removed leaves no dynamic shared
// memory segment behind. As POSIX segments (/dev/shm/PostgreSQL.*), which only a restart on the
// same data directory cleans up, every such kill left about a megabyte for good. The segments
// looked for are those the cluster's processes have mapped when it is killed: /dev/shm is the
// machine's, where other PostgreSQL servers (another package's tests, the demo) make and remove
// their own meanwhile.
func TestKilledLeavesNoSharedMemory(t *testing.T) {
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	db := c.Open(t, c.Database())
	// A parallel query asks for dynamic shared memory beyond the control segment.
	if _, err := db.Exec(`SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET min_parallel_table_scan_size = 0;
SELECT count(*) FROM generate_series(1, 100000) g`); err != nil {
		t.Fatal(err)
	}
	// The session stays open: its backend maps what the server's sessions map.
	held := posixSegments(t, c)
	db.Close()
	c.Kill()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, f := range held {
		if _, err := os.Stat(f); err == nil {
			left = append(left, f)
		}
	}
	if len(left) > 0 {
		t.Errorf("a server killed and removed left %d shared memory segments: %v", len(left), left)
	}
}

// posixSegments lists the POSIX shared memory segments (/dev/shm/PostgreSQL.*) that c's
// postmaster and its children have mapped.
func posixSegments(t *testing.T, c *Cluster) []string {
	t.Helper()
	c.mu.Lock()
	pm := c.cmd.Process.Pid
	c.mu.Unlock()
	kids, err := children(pm)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, pid := range append(kids, pm) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			continue // ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if i := strings.Index(line, "/dev/shm/PostgreSQL."); i >= 0 {
				if seg := strings.TrimSuffix(line[i:], " (deleted)"); !slices.Contains(segs, seg) {
					segs = append(segs, seg)
				}
			}
		}
	}
	return segs
}
