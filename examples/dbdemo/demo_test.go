package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestDemoScriptStopsOnCtrlC: Ctrl-C in the README's main job (examples/demo.sh) stops the
// demo at once and leaves nothing behind: no process on the demo's ports, no data dir. The
// demo runs here as on a fresh machine without curl, and is stopped once it has killed site1's
// server (whose end bash must not report as a failure: "line 79: 1234 Killed").
func TestDemoScriptStopsOnCtrlC(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("the demo needs bash: %v", err)
	}
	// Not t.TempDir: a pgtest dir is removed by the next test process too, should go test's
	// -timeout kill this one before its cleanups.
	noCurl, release, err := pgtest.TempDir("dbdemo-sh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	if err := os.WriteFile(filepath.Join(noCurl, "curl"), []byte("#!/bin/sh\necho 'curl: not installed' >&2\nexit 127\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ports := []string{"7001", "7002", "7101", "7102", "7181", "7182", "7183", "7946", "7947", "7948"}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second); err == nil {
			c.Close()
			t.Skipf("port %s, which the demo uses, is taken", p)
		}
	}
	cmd := exec.Command("bash", "../demo.sh")
	logFile := filepath.Join(noCurl, "demo.log")
	cmd.Env = append(os.Environ(), "PATH="+noCurl+string(os.PathListSeparator)+os.Getenv("PATH"), "TANDEM_DEMO_LOG="+logFile, "TMPDIR="+noCurl)
	// Its own process group, as a terminal gives a foreground job: Ctrl-C signals all of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuilder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{}) // closed once done has its value: the cleanup waits for this
	var output lockedBuilder
	reached := make(chan struct{})
	go func() {
		s := bufio.NewScanner(stdout)
		seen := false
		for s.Scan() {
			output.WriteString(s.Text() + "\n")
			if !seen && strings.HasPrefix(s.Text(), "== site1's server comes back") {
				seen = true
				close(reached)
			}
		}
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited: // not done, which the test may have drained: that wait took 10 s every run
		case <-time.After(10 * time.Second):
		}
	})
	select {
	case <-reached:
	case err := <-done:
		t.Fatalf("the demo ended before its failover step: %v\n%s\n%s", err, output.String(), stderr.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("the demo did not reach its failover step within 3 minutes:\n%s", stderr.String())
	}
	if strings.Contains(stderr.String(), "Killed") {
		t.Errorf("the demo's kill -9 of site1's server reads as a failure:\n%s", stderr.String())
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case err := <-done:
		t.Logf("the demo stopped %v after Ctrl-C", time.Since(sent).Round(time.Millisecond))
		if err == nil {
			t.Errorf("the demo exited 0 after Ctrl-C")
		}
	case <-time.After(5 * time.Second):
		log, _ := os.ReadFile(logFile)
		t.Fatalf("the demo still runs 5 s after Ctrl-C:\n%s\nits processes' log:\n%s", output.String(), log)
	}
	if strings.Contains(stderr.String(), "timed out") {
		t.Errorf("after Ctrl-C the demo went on and reported a failure:\n%s", stderr.String())
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second); err == nil {
			c.Close()
			t.Errorf("port %s still answers after the demo stopped", p)
		}
	}
	if _, err := os.Stat("/tmp/tandem-demo"); !os.IsNotExist(err) {
		t.Errorf("/tmp/tandem-demo is still there after the demo stopped (%v)", err)
	}
}

// lockedBuilder is a strings.Builder one goroutine writes while another reads it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemoCtrlCAfterTheKill: Ctrl-C once the demo has killed site1's database, which it would
// have restarted later, stops the demo without reporting a failure and leaves no shared memory
// behind. A PostgreSQL server killed -9 leaves its dynamic shared memory segments
// (/dev/shm/PostgreSQL.*, by default) until a server starts again on its directory; the demo is
// no test binary, to which pgtest gives segments in the data directory, removed with it.
func TestDemoCtrlCAfterTheKill(t *testing.T) {
	if _, err := pgtest.Bin("postgres"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	// Not t.TempDir: a pgtest dir is removed by the next test process too, should go test's
	// -timeout kill this one before its cleanups.
	bin, release, err := pgtest.TempDir("dbdemo-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	for name, pkg := range map[string]string{"tandem": "../../cmd/tandem", "wireserver": "../wireserver", "dbdemo": "."} {
		if b, err := exec.Command("go", "build", "-race", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "dbdemo"), "-tandem", filepath.Join(bin, "tandem"), "-wireserver", filepath.Join(bin, "wireserver"))
	// Its own process group, as a terminal gives a foreground job: Ctrl-C signals all of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuilder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})
	var output lockedBuilder
	site1Segments := make(chan []string, 1)
	reached := make(chan struct{})
	go func() {
		s := bufio.NewScanner(stdout)
		seen := false
		for s.Scan() {
			output.WriteString(s.Text() + "\n")
			var port int
			if _, err := fmt.Sscanf(s.Text(), "   site1: PostgreSQL on port %d,", &port); err == nil {
				// Site2's cluster is made next, which takes a while: site1's server runs.
				site1Segments <- segmentsOf(port)
			}
			if !seen && strings.HasPrefix(s.Text(), "   site2 serves") {
				seen = true
				close(reached)
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case <-reached:
	case err := <-exited:
		exited <- err
		t.Fatalf("the demo ended before site2 served alone: %v\n%s\n%s", err, output.String(), stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("site2 did not serve alone within 2 minutes:\n%s\n%s", output.String(), stderr.String())
	}
	segs := <-site1Segments
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("the demo still runs 30 s after Ctrl-C:\n%s", output.String())
	}
	// Stopped as asked: no failure reported, no log tail shown as for one.
	if strings.Contains(stderr.String(), "dbdemo:") || strings.Contains(stderr.String(), "---") {
		t.Errorf("after Ctrl-C the demo reported a failure:\n%s", stderr.String())
	}
	for _, seg := range segs {
		if _, err := os.Stat(seg); err == nil {
			t.Errorf("%s, a segment of site1's killed database, is left behind after Ctrl-C", seg)
			os.Remove(seg)
		}
	}
}

// segmentsOf lists the PostgreSQL dynamic shared memory segments in /dev/shm that the
// postmaster listening on port maps.
func segmentsOf(port int) []string {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil {
			continue // gone meanwhile
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		i := slices.Index(args, "-D")
		if filepath.Base(args[0]) != "postgres" || i < 0 || i+1 >= len(args) {
			continue
		}
		pid, err := os.ReadFile(filepath.Join(args[i+1], "postmaster.pid"))
		if lines := strings.Split(string(pid), "\n"); err != nil || len(lines) < 4 || lines[3] != strconv.Itoa(port) {
			continue
		}
		maps, err := os.ReadFile(filepath.Join(filepath.Dir(c), "maps"))
		if err != nil {
			return nil
		}
		var segs []string
		for _, seg := range regexp.MustCompile(`/dev/shm/PostgreSQL\.[0-9]+`).FindAllString(string(maps), -1) {
			if !slices.Contains(segs, seg) {
				segs = append(segs, seg)
			}
		}
		return segs
	}
	return nil
}
