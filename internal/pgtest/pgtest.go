// Package pgtest starts real PostgreSQL clusters for tests and benchmarks.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq" // the "postgres" driver for control work
	"golang.org/x/sys/unix"
)

// Superuser is the bootstrap superuser of every cluster (initdb -U).
const Superuser = "postgres"

// ErrNoPostgres means no PostgreSQL server binaries were found.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql/*/bin")

// readyTimeout bounds how long a start waits for the server to accept connections.
const readyTimeout = 30 * time.Second

type options struct {
	db       string
	settings map[string]string
	order    []string
	pwUser   string
	pwPass   string
	pwMethod string
}

// Option changes how a cluster is made.
type Option func(*options)

// WithDatabase names the database created after start (default "app").
func WithDatabase(name string) Option { return func(o *options) { o.db = name } }

// WithSetting sets (or overrides) one postgresql.conf parameter; value is written as given,
// so strings need their own quotes: WithSetting("synchronous_standby_names", "'*'").
func WithSetting(name, value string) Option {
	return func(o *options) {
		if _, ok := o.settings[name]; !ok {
			o.order = append(o.order, name)
		}
		o.settings[name] = value
	}
}

// WithMaxPreparedTransactions sets max_prepared_transactions (default 64; 0 disables 2PC).
func WithMaxPreparedTransactions(n int) Option {
	return WithSetting("max_prepared_transactions", strconv.Itoa(n))
}

// WithPasswordUser creates a LOGIN user with a password that must authenticate over TCP with
// method ("scram-sha-256" or "md5"); every other user keeps trust authentication.
func WithPasswordUser(name, password, method string) Option {
	return func(o *options) { o.pwUser, o.pwPass, o.pwMethod = name, password, method }
}

// Cluster is one running (or stopped) PostgreSQL cluster in its own temporary directory.
type Cluster struct {
	bin  string // directory holding initdb and postgres
	dir  string // cluster dir: data/, the unix socket and postgres.log
	port int
	db   string
	cred *syscall.Credential // non-nil when running as root
	// hasDB: the data directory came from the template, which holds templateDB already.
	hasDB bool

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	closed bool
}

// Start makes a cluster for tb and stops and removes it in tb.Cleanup, also when the test fails.
// Without PostgreSQL binaries it skips the test, or fails it when $CI is set.
func Start(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	return StartN(tb, 1, opts...)[0]
}

// StartN makes n clusters at once, as Start makes one: a start is mostly waiting (files
// copied and synced, the server's start-up), so a test that needs two waits about as long as
// for one. Those that started are stopped and removed when one fails.
func StartN(tb testing.TB, n int, opts ...Option) []*Cluster {
	tb.Helper()
	cs := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cs[i], errs[i] = New(opts...) })
	}
	wg.Wait()
	for _, c := range cs {
		if c == nil {
			continue
		}
		tb.Cleanup(func() {
			if err := c.Close(); err != nil {
				tb.Errorf("pgtest: close: %v", err)
			}
		})
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNoPostgres) {
			continue
		}
		if os.Getenv("CI") != "" {
			tb.Fatalf("%v (in CI a missing PostgreSQL is a failure)", err)
		}
		tb.Skipf("%v; skipping (install PostgreSQL 15+ server binaries to run this test)", err)
	}
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return cs
}

// New makes and starts a cluster; the caller must Close it.
func New(opts ...Option) (*Cluster, error) {
	o := &options{db: "app", settings: map[string]string{}}
	for k, v := range map[string]string{
		"listen_addresses":          "'127.0.0.1'",
		"max_prepared_transactions": "64",
		"wal_level":                 "logical",
		"max_replication_slots":     "16",
		"max_wal_senders":           "16",
		"max_connections":           "100",
		"fsync":                     "on",
		"shared_buffers":            "32MB",
		"logging_collector":         "off",
	} {
		WithSetting(k, v)(o)
	}
	if testing.Testing() {
		// Dynamic shared memory in the data directory (pg_dynshmem), removed with it: as POSIX
		// segments (/dev/shm/PostgreSQL.*) a server killed -9 — the fault tests do it by the
		// dozen — left its segments behind for good, a hundred megabytes a suite run.
		WithSetting("dynamic_shared_memory_type", "mmap")(o)
	}
	sort.Strings(o.order)
	for _, opt := range opts {
		opt(o)
	}
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	removeLeftovers()
	dir, err := os.MkdirTemp(root(), "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("make cluster dir: %w", err)
	}
	if err := ownDir(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, db: o.db}
	if err := c.setup(o); err != nil {
		os.RemoveAll(dir)
		disown(dir)
		return nil, err
	}
	return c, nil
}

// ownerMark names the file that says a directory was made by pgtest and is locked (flock) by
// the process that owns it, for as long as it lives.
const ownerMark = "pgtest.owner"

// owned holds the directories this process has locked (ownDir), each by an open file kept
// here rather than in a value the garbage collector could finalize, which would unlock it.
var owned = struct {
	sync.Mutex
	dirs map[string]*os.File
}{dirs: map[string]*os.File{}}

// ownDir locks dir for this process and marks it, in that order: a marked directory that no
// one holds locked is a leftover. disown (or the process's death) unlocks it.
func ownDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerMark), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		f.Close()
		return err
	}
	owned.Lock()
	owned.dirs[dir] = f
	owned.Unlock()
	return nil
}

// disown unlocks dir, once it is removed.
func disown(dir string) {
	owned.Lock()
	f := owned.dirs[dir]
	delete(owned.dirs, dir)
	owned.Unlock()
	if f != nil {
		f.Close()
	}
}

// TempDir makes a directory for a test process's own files (the end-to-end tests' binaries
// and sites) that release removes, or, should the process die first, the next New or TempDir
// in any process. It removes what dead processes left first, as New does: a test process that
// starts no cluster (the end-to-end tests without a database) sweeps too.
func TempDir(prefix string) (dir string, release func(), err error) {
	removeLeftovers()
	dir, err = os.MkdirTemp(root(), "pgtest-"+prefix)
	if err != nil {
		return "", nil, err
	}
	if err := ownDir(dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() {
		os.RemoveAll(dir)
		disown(dir)
	}, nil
}

// RootEnv names a directory where the test processes' clusters and directories go instead
// (e.g. /tmp, to put them on disk); a relative one from the process's working directory.
const RootEnv = "PGTEST_ROOT"

// shmRoot is the tmpfs the test processes' clusters go to when it is there with shmRoomMin
// bytes free.
const (
	shmRoot    = "/dev/shm"
	shmRoomMin = 4 << 30
)

// root is where the clusters and directories are made. A test process's go to memory (shmRoot,
// a tmpfs) where that can be written: on disk, making a cluster's thousand files cost more
// than half a second of CPU on this kind of machine (the copy of the template data directory,
// most of a cluster's start-up), and every commit's WAL flush goes to the device — the tests
// spent more CPU in the kernel than in themselves and PostgreSQL together. fsync stays on, and
// a killed server loses nothing it wrote, as on disk; a lost machine is no test's fault. The
// benchmarks and the demo (not test binaries) keep the disk: their figures include the
// device's flushes.
func root() string {
	if r := os.Getenv(RootEnv); r != "" {
		// Absolute: initdb and postgres run in the cluster's directory, where a relative
		// path names nothing.
		if abs, err := filepath.Abs(r); err == nil {
			return abs
		}
		return r
	}
	if testing.Testing() && unix.Access(shmRoot, unix.W_OK) == nil {
		var st unix.Statfs_t
		if unix.Statfs(shmRoot, &st) == nil && shmUsable(st) {
			return shmRoot
		}
	}
	return os.TempDir()
}

// shmUsable says whether the file system st describes can take the test processes' clusters
// and directories: a tmpfs with room for a few dozen clusters at once (a container's default
// /dev/shm, 64 MB, would not hold two), mounted without noexec, as container runtimes and
// hardened hosts mount /dev/shm: the end-to-end tests run the binaries they build into a
// TempDir.
func shmUsable(st unix.Statfs_t) bool {
	return st.Type == unix.TMPFS_MAGIC && uint64(st.Bavail)*uint64(st.Bsize) >= shmRoomMin && st.Flags&unix.ST_NOEXEC == 0
}

// removeLeftovers removes the cluster and template directories of test processes that died
// without removing them (go test's -timeout, kill -9): a marked directory nobody holds locked.
// What still runs in one is killed first: a server started before the postmaster died with
// its process, and the children of a postmaster that died while its cluster was paused. Those
// were stopped (SIGSTOP) when it died and stay so, children of pid 1 holding the cluster's
// shared memory, until killed; the directories of such clusters that an earlier sweep removed
// around them are looked for too (reapRemoved).
func removeLeftovers() {
	roots := slices.Compact(slices.Sorted(slices.Values([]string{os.TempDir(), shmRoot, root()})))
	var dirs []string
	for _, r := range roots {
		found, _ := filepath.Glob(filepath.Join(r, "pgtest-*"))
		dirs = append(dirs, found...)
	}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, ownerMark)); err != nil {
			continue // not marked: made before the mark existed, or by someone else
		}
		f, err := os.Open(dir)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			killLeftover(dir)
			os.RemoveAll(dir)
		}
		f.Close()
	}
	reapRemoved(roots)
}

// killLeftover kills what runs in the cluster directory dir, whose process is gone: the
// postmaster that postmaster.pid in dir/data names, if that process still runs on that data
// directory, its children, and every PostgreSQL server process working in dir/data (the
// children of a postmaster that died while they were stopped, whose parent is pid 1 now). It
// then removes the cluster's shared memory segment.
func killLeftover(dir string) {
	data := filepath.Join(dir, "data")
	defer releaseShmem(data)
	var doomed []int
	if pid := leftoverPostmaster(data); pid > 0 {
		kids, _ := children(pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		doomed = append(kids, pid)
	}
	cwd := data
	if real, err := filepath.EvalSymlinks(data); err == nil {
		cwd = real // as the kernel names a process's working directory
	}
	for _, pid := range serverProcs(func(dir string) bool { return dir == cwd }) {
		_ = syscall.Kill(pid, syscall.SIGKILL) // ends a stopped process too
		doomed = append(doomed, pid)
	}
	// Gone before the shared memory they held can be released.
	waitGone(doomed, 5*time.Second)
}

// leftoverPostmaster returns the pid that postmaster.pid in data names if that process still
// runs on data, else 0.
func leftoverPostmaster(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(data)) {
		return 0 // gone, or the pid is another process's now
	}
	return pid
}

// reapRemoved kills the PostgreSQL server processes left working in a cluster data directory
// under one of roots that was removed around them, and removes their shared memory segment:
// the stopped children of a postmaster that died while its cluster was paused, whose directory
// an earlier sweep removed (one that knew nothing of them, or one in another process that found
// them after this sweep's scan). Only those whose System V segment's creator, their postmaster,
// no longer runs in that directory are: a running postmaster belongs to a live test process,
// which ends it and its children itself.
func reapRemoved(roots []string) {
	var real []string
	for _, r := range roots {
		if p, err := filepath.EvalSymlinks(r); err == nil {
			r = p
		}
		real = append(real, r)
	}
	pids := serverProcs(func(cwd string) bool {
		data, removed := strings.CutSuffix(cwd, " (deleted)")
		return removed && filepath.Base(data) == "data" && strings.HasPrefix(filepath.Base(filepath.Dir(data)), "pgtest-") &&
			slices.Contains(real, filepath.Dir(filepath.Dir(data)))
	})
	if len(pids) == 0 {
		return
	}
	segs := sysvSegments()
	var doomed []int
	ids := map[int]bool{}
	for _, pid := range pids {
		key, ok := sysvKey(pid)
		seg, found := segs[key]
		if !ok || !found {
			continue
		}
		if alive(seg.cpid) {
			cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", seg.cpid))
			if pcwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd == pcwd {
				continue // its postmaster runs, or may
			}
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		doomed = append(doomed, pid)
		ids[seg.id] = true
	}
	waitGone(doomed, 5*time.Second)
	for id := range ids {
		releaseSegment(id)
	}
}

// serverProcs lists the PostgreSQL server processes (those whose program is named postgres)
// whose working directory, as /proc names it (" (deleted)" after a removed one), keep accepts.
// Only processes this one may look into are seen: its user's, or all when root. The postmaster
// and each of its children work in the data directory (PostgreSQL changes to it at start).
func serverProcs(keep func(cwd string) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil || !keep(cwd) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if exe, _ = strings.CutSuffix(exe, " (deleted)"); err == nil && filepath.Base(exe) == "postgres" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sysvSegment is a System V shared memory segment: its id and the pid of its creator.
type sysvSegment struct{ id, cpid int }

// sysvSegments returns the System V shared memory segments, from /proc/sysvipc/shm, by key.
func sysvSegments() map[uint32]sysvSegment {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return nil
	}
	segs := map[uint32]sysvSegment{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line) // key shmid perms size cpid lpid nattch …
		if len(f) < 7 {
			continue
		}
		key, err1 := strconv.ParseInt(f[0], 10, 64)
		id, err2 := strconv.Atoi(f[1])
		cpid, err3 := strconv.Atoi(f[4])
		if err1 == nil && err2 == nil && err3 == nil && key != 0 {
			segs[uint32(key)] = sysvSegment{id: id, cpid: cpid}
		}
	}
	return segs
}

// sysvKey returns the key of the System V shared memory segment that process pid has
// attached (a PostgreSQL server process has its cluster's), from its memory map, where the
// kernel names one /SYSV followed by its key in hex.
func sysvKey(pid int) (uint32, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.Index(line, "/SYSV")
		if i < 0 || len(line) < i+13 {
			continue
		}
		if key, err := strconv.ParseUint(line[i+5:i+13], 16, 32); err == nil && key != 0 {
			return uint32(key), true
		}
	}
	return 0, false
}

// waitGone waits up to d for the processes pids to have ended (a zombie has).
func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, p := range pids {
		for time.Now().Before(deadline) && alive(p) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// alive tells whether pid is a process that has not ended (a zombie has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func (c *Cluster) setup(o *options) error {
	if os.Geteuid() == 0 {
		cred, err := postgresCredential()
		if err != nil {
			return err
		}
		c.cred = cred
		// The parent (os.TempDir) is world-traversable; the cluster dir must belong to postgres.
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown %s to postgres: %w", c.dir, err)
		}
	}
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return err
	}
	if err := c.initData(); err != nil {
		return err
	}
	if err := c.writeHBA(o); err != nil {
		return err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
		if err := c.writeConf(o); err != nil {
			return err
		}
		if lastErr = c.start(); lastErr == nil {
			break
		}
		// Another process may have taken the port between probe and bind: try another one.
	}
	if lastErr != nil {
		return lastErr
	}
	if err := c.createObjects(o); err != nil {
		c.kill() // New removes the directory next: its shared memory goes first
		releaseShmem(c.dataDir())
		return err
	}
	return nil
}

// initData makes the cluster's data directory: a copy of the test process's template when
// RunTests runs the tests, else by initdb.
func (c *Cluster) initData() error {
	if src, ok := templateData(c.bin, c.cred); ok {
		err := copyTree(src, c.dataDir(), c.cred)
		if err == nil {
			c.hasDB = true
			return nil
		}
		if rerr := os.RemoveAll(c.dataDir()); rerr != nil {
			return fmt.Errorf("copy the template data directory: %w (and remove the copy: %v)", err, rerr)
		}
	}
	return initdb(c.bin, c.dir, c.cred)
}

// initdb makes the data directory dir/data.
func initdb(bin, dir string, cred *syscall.Credential) error {
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", Superuser,
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// templateDB is the database the template holds besides initdb's: the default of New, which
// each cluster would otherwise make at start (CREATE DATABASE copies template1 through the
// WAL, and its shutdown checkpoint writes it out again: about 0.3 s a cluster).
const templateDB = "app"

// template is a data directory that initdb made once for the test process, with templateDB
// in it, and that each cluster copies: initdb takes over a second, a copy about a tenth of
// that. It exists only
// while RunTests runs, which removes it at the end. Every copy has the same database system
// identifier, which nothing here looks at.
var template struct {
	sync.Mutex
	enabled bool
	dir     string // holds data/ once made
	failed  bool   // making it failed: clusters run initdb
}

// RunTests runs a test binary's tests (call it from TestMain) with clusters copied from one
// template data directory, and removes that directory when they are done.
func RunTests(m *testing.M) int {
	template.Lock()
	template.enabled = true
	template.Unlock()
	defer func() {
		template.Lock()
		defer template.Unlock()
		if template.dir != "" {
			os.RemoveAll(template.dir)
			disown(template.dir)
		}
		template.enabled, template.dir = false, ""
	}()
	return m.Run()
}

// templateData returns the template's data directory, making it on first use.
func templateData(bin string, cred *syscall.Credential) (string, bool) {
	template.Lock()
	defer template.Unlock()
	if !template.enabled || template.failed {
		return "", false
	}
	if template.dir == "" {
		dir, err := os.MkdirTemp(root(), "pgtest-template-")
		if err == nil {
			err = ownDir(dir)
		}
		if err == nil && cred != nil {
			err = os.Chown(dir, int(cred.Uid), int(cred.Gid))
		}
		if err == nil {
			err = initdb(bin, dir, cred)
		}
		if err == nil {
			err = createDatabaseSingleUser(bin, dir, templateDB, cred)
		}
		if err != nil {
			if dir != "" {
				os.RemoveAll(dir)
				disown(dir)
			}
			template.failed = true
			return "", false
		}
		template.dir = dir
	}
	return filepath.Join(template.dir, "data"), true
}

// createDatabaseSingleUser makes database db in the stopped cluster of dir/data with
// PostgreSQL's single-user mode, which opens no port and ends at the end of its input.
func createDatabaseSingleUser(bin, dir, db string, cred *syscall.Credential) error {
	cmd := exec.Command(filepath.Join(bin, "postgres"), "--single", "-D", filepath.Join(dir, "data"), "postgres")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("CREATE DATABASE " + quoteIdent(db) + "\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	if err == nil && bytes.Contains(out, []byte("ERROR:")) {
		err = errors.New("single-user mode reported an error")
	}
	if err != nil {
		return fmt.Errorf("create database %s in the template: %w\n%s", db, err, out)
	}
	return nil
}

// copyTree copies the directory src to dst (which must not exist) with the same modes, owned
// by cred's user when set. Runs of zeros (most of a fresh WAL segment) become holes.
func copyTree(src, dst string, cred *syscall.Credential) error {
	buf := make([]byte, 64<<10)
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			err = os.Mkdir(to, info.Mode().Perm())
		case info.Mode().IsRegular():
			err = copyFile(path, to, info.Mode().Perm(), buf)
		default:
			return fmt.Errorf("%s: not a file or directory", path)
		}
		if err == nil && cred != nil {
			err = os.Lchown(to, int(cred.Uid), int(cred.Gid))
		}
		return err
	})
}

func copyFile(src, dst string, perm os.FileMode, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	var size int64
	for {
		n, rerr := in.Read(buf)
		if n > 0 {
			if allZero(buf[:n]) {
				_, err = out.Seek(int64(n), io.SeekCurrent)
			} else {
				_, err = out.Write(buf[:n])
			}
			size += int64(n)
		}
		if err == nil && rerr != nil && rerr != io.EOF {
			err = rerr
		}
		if err != nil || rerr != nil {
			break
		}
	}
	if err == nil {
		err = out.Truncate(size) // a hole at the end needs the file's length set
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func (c *Cluster) writeConf(o *options) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n# pgtest\nport = %d\nunix_socket_directories = '%s'\n", c.port, c.dir)
	for _, k := range o.order {
		fmt.Fprintf(&b, "%s = %s\n", k, o.settings[k])
	}
	// postgresql.auto.conf would win over this file; pgtest owns the file, so a fresh one is fine.
	return c.writeOwned(filepath.Join(c.dataDir(), "pgtest.conf"), b.String(), func() error {
		return appendOnce(filepath.Join(c.dataDir(), "postgresql.conf"), "include_if_exists = 'pgtest.conf'\n")
	})
}

func (c *Cluster) writeHBA(o *options) error {
	var b strings.Builder
	b.WriteString("local all all trust\nlocal replication all trust\n")
	if o.pwUser != "" {
		fmt.Fprintf(&b, "host all %s 127.0.0.1/32 %s\nhost replication %s 127.0.0.1/32 %s\n",
			o.pwUser, o.pwMethod, o.pwUser, o.pwMethod)
	}
	b.WriteString("host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
	return c.writeOwned(filepath.Join(c.dataDir(), "pg_hba.conf"), b.String(), nil)
}

// writeOwned writes a file inside the data dir, owned by the cluster's OS user.
func (c *Cluster) writeOwned(path, content string, then func() error) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	if then != nil {
		return then()
	}
	return nil
}

func appendOnce(path, line string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte(line)) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *Cluster) createObjects(o *options) error {
	db, err := sql.Open("postgres", c.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if c.db != "postgres" && !(c.hasDB && c.db == templateDB) {
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(c.db)); err != nil {
			return fmt.Errorf("create database %s: %w", c.db, err)
		}
	}
	if o.pwUser != "" {
		enc := "scram-sha-256"
		if o.pwMethod == "md5" {
			enc = "md5"
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SET password_encryption = '"+enc+"'"); err != nil {
			return err
		}
		q := fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION PASSWORD %s", quoteIdent(o.pwUser), quoteLiteral(o.pwPass))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create password user: %w", err)
		}
		q = fmt.Sprintf("GRANT ALL ON DATABASE %s TO %s", quoteIdent(c.db), quoteIdent(o.pwUser))
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("grant to password user: %w", err)
		}
	}
	return nil
}

// start launches the postmaster in its own process group and waits until it accepts connections.
// The postmaster is killed when the process that started it dies without closing it (go test's
// -timeout, kill -9): Setpgid keeps it from a terminal's Ctrl-C, so nothing else would stop it.
func (c *Cluster) start() error {
	logf, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.dataDir())
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	logf.Close()
	if startedHook != nil {
		startedHook(cmd.Process.Pid)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()
	if err := c.waitReady(exited); err != nil {
		c.kill()
		releaseShmem(c.dataDir()) // a start on another port, or the directory's removal, follows
		return err
	}
	return nil
}

func (c *Cluster) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	db, err := sql.Open("postgres", c.DSN("postgres")+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer db.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited during start-up on port %d:\n%s", c.port, c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres on port %d not ready after %v: %v\n%s", c.port, readyTimeout, err, c.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DSN is a URL for db as the superuser over TCP.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, url.PathEscape(db))
}

// SocketDSN is a connection string for db as the superuser over the cluster's Unix-domain
// socket (in Dir), as a client on the database's own host would connect.
func (c *Cluster) SocketDSN(db string) string {
	return SocketDSN(c.dir, c.port, db)
}

// SocketDSN is a connection string for db as the superuser over the Unix-domain socket that
// PostgreSQL (or a shim listening as it does) names dir/.s.PGSQL.port.
func SocketDSN(dir string, port int, db string) string {
	return fmt.Sprintf("host='%s' port=%d user=%s dbname='%s' sslmode=disable", dir, port, Superuser, db)
}

// UserDSN is a URL for db as user with password over TCP.
func (c *Cluster) UserDSN(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Database is the name of the database made at start.
func (c *Cluster) Database() string { return c.db }

// Port is the TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Dir is the cluster directory (the data directory is Dir()/data).
func (c *Cluster) Dir() string { return c.dir }

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// Kill SIGKILLs the postmaster and its backends (its whole process group, as a machine crash
// would) and waits for the postmaster to be gone.
func (c *Cluster) Kill() { c.kill() }

func (c *Cluster) kill() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.cmd = nil
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	// Every backend at once, as a crash would, rather than each noticing the postmaster's death.
	pm := cmd.Process.Pid
	_ = syscall.Kill(pm, syscall.SIGSTOP)
	kids, _ := children(pm)
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-pm, syscall.SIGKILL)
	<-exited
	// Wait briefly for the backends to be gone, so a restart finds the shared memory free. Gone
	// is dead, not reaped: their parent is pid 1 now, which may take seconds to reap them, and
	// a zombie holds no memory.
	waitGone(kids, 5*time.Second)
}

// Pause SIGSTOPs the postmaster and its backends, as a frozen host would look: the kernel still
// accepts connections on the port, nothing answers them. Resume (or Stop, Kill, Close) undoes it.
// Should the test process die meanwhile, the postmaster dies with it but its children stay
// stopped (only SIGKILL or SIGCONT moves a stopped process): the next New or TempDir in any
// process kills them (removeLeftovers).
func (c *Cluster) Pause() error { return c.signalAll(syscall.SIGSTOP) }

// Resume SIGCONTs what Pause stopped.
func (c *Cluster) Resume() error { return c.signalAll(syscall.SIGCONT) }

// signalAll sends sig to the postmaster and to each of its children. Each backend is a process
// group of its own (PostgreSQL calls setsid in every child), so a signal to the postmaster's
// group reaches the postmaster alone. The postmaster is stopped first, so that it forks
// nothing while its children are listed.
func (c *Cluster) signalAll(sig syscall.Signal) error {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("postgres on port %d is not running", c.port)
	}
	pm := cmd.Process.Pid
	if sig != syscall.SIGCONT {
		if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
			return err
		}
	}
	kids, err := children(pm)
	if err != nil {
		return err
	}
	for _, pid := range kids {
		_ = syscall.Kill(pid, sig) // a backend may have just exited
	}
	if sig == syscall.SIGSTOP {
		return nil
	}
	return syscall.Kill(pm, sig)
}

// children lists the processes whose parent is pid, from /proc.
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(b[bytes.LastIndexByte(b, ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil && ppid == pid {
				kids = append(kids, n)
			}
		}
	}
	return kids, nil
}

// Stop shuts the server down (fast shutdown; SIGKILL after 15 s). The directory stays.
func (c *Cluster) Stop() error { return c.shutdown(syscall.SIGINT, "fast") }

// stopImmediate ends the server with an immediate shutdown, for a cluster whose directory is
// removed next: no shutdown checkpoint writes out what nothing will read. The postmaster still
// waits for its backends and releases its shared memory. SIGKILL after 15 s.
func (c *Cluster) stopImmediate() error { return c.shutdown(syscall.SIGQUIT, "immediate") }

// shutdown sends the postmaster sig (PostgreSQL's shutdown modes: SIGTERM smart, SIGINT fast,
// SIGQUIT immediate) and waits for it to exit, killing it after 15 s.
func (c *Cluster) shutdown(sig syscall.Signal, mode string) error {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = c.signalAll(syscall.SIGCONT) // a paused cluster cannot shut down
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		c.mu.Lock()
		c.cmd = nil
		c.mu.Unlock()
		return nil
	case <-time.After(15 * time.Second):
		c.kill()
		return fmt.Errorf("postgres on port %d ignored %s shutdown for 15s; killed", c.port, mode)
	}
}

// releaseShmem removes the System V shared memory segment that a postmaster killed with
// SIGKILL (Kill, or the test process's death) left behind: one that exits by itself removes
// it, and a restart on the same directory takes it over, but a killed cluster whose directory
// is removed would leave it in the kernel for good (56 bytes and a slot of kernel.shmmni each).
// The postmaster's lock file, left behind too, names it (line 7: key and id); it is removed only
// once nothing is attached to it. Its processes are dead or dying when this is called, but one
// that PostgreSQL's postmaster death ended, or that the kernel has not yet finished, may hold
// it for a while: up to 10 s are waited for that.
func releaseShmem(dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return // a clean exit removed the file, and the segment
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	id, err := strconv.Atoi(f[1])
	if err != nil {
		return
	}
	releaseSegment(id)
}

// releaseSegment removes System V shared memory segment id once nothing is attached to it,
// waiting up to 10 s for that.
func releaseSegment(id int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
			return // gone: removed by its postmaster, or taken over and removed by a new one
		}
		if desc.Nattch == 0 {
			_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
			return
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart starts the server again on the same directory and port and waits until it is ready.
// It stops a running server first.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	var err error
	for i := 0; i < 3; i++ {
		// After Kill a lingering backend may still hold the shared memory for a moment.
		if err = c.start(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// Close stops the server and removes its directory. Safe to call more than once.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	err := c.stopImmediate()
	releaseShmem(c.dataDir())
	if rerr := os.RemoveAll(c.dir); err == nil {
		err = rerr
	}
	disown(c.dir)
	return err
}

// Exec runs sql in the cluster's database as the superuser and fails tb on error.
func (c *Cluster) Exec(tb testing.TB, query string, args ...any) {
	tb.Helper()
	db, err := sql.Open("postgres", c.DSN(c.db))
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		tb.Fatalf("pgtest: exec %q on port %d: %v", query, c.port, err)
	}
}

// Open returns a database/sql handle (lib/pq) to db as the superuser, closed in tb.Cleanup.
func (c *Cluster) Open(tb testing.TB, db string) *sql.DB {
	tb.Helper()
	h, err := sql.Open("postgres", c.DSN(db))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Bin returns the path of PostgreSQL program name (pg_dump, pg_restore, …) beside the server
// binaries the clusters run.
func Bin(name string) (string, error) {
	dir, err := findBin()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if !isExec(p) {
		return "", fmt.Errorf("%s is not in %s", name, dir)
	}
	return p, nil
}

// startedHook, when set (by this package's tests), is told each postmaster's pid as it starts.
var startedHook func(pid int)

// findBin returns the directory holding initdb and postgres: from PATH (symbolic links resolved)
// or the newest /usr/lib/postgresql/<version>/bin.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(real)
			if isExec(filepath.Join(dir, "postgres")) {
				return dir, nil
			}
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestV := "", -1.0
	for _, m := range matches {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(m)), 64)
		if err != nil || !isExec(filepath.Join(m, "initdb")) || !isExec(filepath.Join(m, "postgres")) {
			continue
		}
		if v > bestV {
			best, bestV = m, v
		}
	}
	if best == "" {
		return "", ErrNoPostgres
	}
	return best, nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the OS user postgres to run the server: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OS user postgres has odd ids %q/%q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) { return FreePort() }

// FreePort returns a loopback port free for TCP and UDP (gossip uses both) and never handed
// out before in this process, taken outside the kernel's ephemeral port range when there is
// room: a port from that range can be taken, while a server that was stopped or killed is
// down, as the source port of any outgoing connection or by another process asking for port
// 0 — and the server then cannot start again on it (seen in CI when test packages run side
// by side).
func FreePort() (int, error) {
	lo, hi := 20000, 32768
	if a, b, ok := ephemeralRange(); ok {
		switch {
		case a-1 > lo+1000:
			hi = a
		case b+1 < 65000:
			lo, hi = b+1, 65000
		default:
			lo, hi = 0, 0
		}
	}
	for i := 0; hi > lo && i < 500; i++ {
		port := lo + rand.IntN(hi-lo)
		if portFree(port) && ClaimPort(port) {
			return port, nil
		}
	}
	for range 200 { // no room outside the ephemeral range: ask the kernel
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if portFree(port) && ClaimPort(port) {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: every port offered was taken or handed out before")
}

// portFree tells whether port can be bound on 127.0.0.1 for TCP and UDP now.
func portFree(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// ephemeralRange reads the kernel's range of ports for outgoing connections and port 0.
func ephemeralRange() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	return lo, hi, err1 == nil && err2 == nil && lo <= hi
}

// handedOut holds the loopback ports this process's test harnesses handed out: the kernel may
// offer a port again once the probe that found it closed, before the process it was meant for
// binds it. held: the claims other processes see (ClaimPort).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
	held  []net.Listener
}{ports: map[int]bool{}}

// ClaimPort records port as handed out to a test in this process and reports whether it was
// free of earlier claims. Harnesses that probe for free ports call it, so that two of their
// servers are never given the same one.
//
// On Linux the claim holds, for the life of the process, an abstract Unix socket named for
// the port (nothing on disk; the kernel lets go of it when the process ends), and a port
// another process claimed so is refused: test binaries that go test runs side by side pick
// from the same range, and one could otherwise hand out a port between another's probe and
// the bind of the server it was meant for (seen: a sidecar whose admin port was taken so).
func ClaimPort(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports[port] {
		return false
	}
	if runtime.GOOS == "linux" {
		l, err := net.Listen("unix", portClaimName(port))
		if errors.Is(err, syscall.EADDRINUSE) {
			return false // claimed by another process
		}
		if err == nil {
			handedOut.held = append(handedOut.held, l) // never closed
		}
	}
	handedOut.ports[port] = true
	return true
}

// portClaimName names the abstract Unix socket that claims port across processes (ClaimPort).
func portClaimName(port int) string { return "@tandem-test-port-" + strconv.Itoa(port) }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// DefaultParallel sets how many parallel tests of the binary run at once, n, unless the command
// line gave -parallel, or -fuzz (whose workers that flag counts: their default stays GOMAXPROCS).
// For packages whose tests mostly wait — on clusters, timeouts, timers — rather than compute;
// call it from TestMain before m.Run.
func DefaultParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if fuzz := flag.Lookup("test.fuzz"); given || fuzz != nil && fuzz.Value.String() != "" {
		return
	}
	if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
		panic(err)
	}
}
