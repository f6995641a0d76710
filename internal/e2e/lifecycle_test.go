package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSighupKeepsRunning: SIGHUP — a log rotation script's `kill -HUP`, a stray `pkill -HUP` —
// must not end a sidecar (Go's default for it): there is no configuration to reload, and a
// master killed by it handed over only once gossip suspected it. It is logged and ignored.
func TestSighupKeepsRunning(t *testing.T) {
	s1, _ := cluster(t, clusterOpts{failback: "manual"})
	s1.tandem.signal(t, syscall.SIGHUP)
	if s1.tandem.exited(2 * time.Second) {
		t.Fatalf("site1's tandem exited on SIGHUP (%v)", s1.tandem.cmd.ProcessState)
	}
	waitFor(t, 5*time.Second, "the log to say SIGHUP was ignored", func() bool {
		return strings.Contains(s1.tandem.out.String(), "SIGHUP ignored")
	})
	if got := httpStatus(s1.admin, "/master"); got != 200 {
		t.Fatalf("site1's /master after SIGHUP: %d, want 200", got)
	}
}

// TestLogReaderGone: a sidecar whose log reader went away (`tandem run 2>&1 | tee log` with tee
// killed, journald restarted) must go on: Go kills a program that writes to a broken pipe on
// fd 1 or 2 with SIGPIPE, and a master dying of it hands over only after suspicion. Here site2's
// sidecar runs with its stderr on a pipe whose reader is closed, then takes over from site1
// (whose server is killed), which it logs.
func TestLogReaderGone(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{failback: "manual"})
	s2.tandem.kill(syscall.SIGTERM)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bins.tandem, "run", "-config", s2.cfg, "-log-level", "debug")
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.Close()
		t.Fatal(err)
	}
	w.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	// What it logs until it is backup of site1, kept for a failure's message.
	var logged strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		logged.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "tandem started") {
			break
		}
	}
	waitFor(t, 10*time.Second, "site2 backup of site1", func() bool {
		return httpStatus(s2.admin, "/backup") == 200 && strings.Contains(httpBody(t, s2.admin, "/status"), `"master": "site1"`)
	})
	r.Close() // the log's reader is gone

	s1.server.kill(syscall.SIGKILL)
	waitFor(t, 15*time.Second, "site2 master", func() bool {
		select {
		case <-done:
			t.Fatalf("site2's tandem died once its log reader was gone: %v\n%s", cmd.ProcessState, logged.String())
		default:
		}
		return httpStatus(s2.admin, "/master") == 200
	})
	select {
	case <-done:
		t.Fatalf("site2's tandem died once its log reader was gone: %v", cmd.ProcessState)
	case <-time.After(time.Second):
	}
	// It still stops gracefully, with its exit status.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("site2's tandem, stopped with SIGTERM: %v, want exit 0", cmd.ProcessState)
		}
	case <-time.After(15 * time.Second):
		t.Error("site2's tandem did not exit within 15 s of SIGTERM")
	}
}

// TestSecondSignalWhileStopping: a second SIGTERM or Ctrl-C while a master's stop waits (here
// for its on_demote hook, 4 s) is not a silent no-op: the log says what the stop waits for and
// how to stop at once. The stop goes on to its end.
func TestSecondSignalWhileStopping(t *testing.T) {
	s1, _ := cluster(t, clusterOpts{failback: "manual", demoteHook: "sleep 4"})
	s1.tandem.signal(t, syscall.SIGTERM)
	waitFor(t, 5*time.Second, "site1's stop to begin", func() bool {
		return strings.Contains(s1.tandem.out.String(), "shutting down")
	})
	s1.tandem.signal(t, syscall.SIGINT)
	waitFor(t, 2*time.Second, "the log to say the stop goes on", func() bool {
		return strings.Contains(s1.tandem.out.String(), "stopping already")
	})
	if !s1.tandem.exited(15 * time.Second) {
		t.Fatal("site1's tandem did not exit within 15 s of SIGTERM")
	}
	if code := s1.tandem.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("site1's tandem exited with %v, want 0", s1.tandem.cmd.ProcessState)
	}
}

// TestReadOnlyDataDirFailsStart: a sidecar whose data_dir takes no file (a read-only
// filesystem, an immutable directory) cannot keep a term record: it could never adopt the
// master's record nor take over (its promotion fails on the save), yet it started and answered
// /backup 200 as if it could. It now fails its start, with exit 1 and the error, so that the
// service shows failed instead of a failover that will not come.
func TestReadOnlyDataDirFailsStart(t *testing.T) {
	dir := tempDir(t, "e2e-")
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	// chattr +i: read-only even for root, who passes over a directory's mode.
	if out, err := exec.Command("chattr", "+i", data).CombinedOutput(); err != nil {
		if err := os.Chmod(data, 0o500); err != nil {
			t.Fatal(err)
		}
		if f, err := os.CreateTemp(data, "probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			t.Skipf("cannot make a directory read-only here (chattr +i: %v %s)", err, out)
		}
	} else {
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", data).Run() })
	}
	cfg := filepath.Join(dir, "site1.toml")
	writeFile(t, cfg, fmt.Sprintf(`site = "site1"
data_dir = %q
[gossip]
bind = "127.0.0.1:%d"
[[server.endpoint]]
name = "operators"
address = "127.0.0.1:%d"
[[proxy.listener]]
endpoint = "operators"
listen = "127.0.0.1:%d"
[admin]
listen = "127.0.0.1:%d"
`, data, freePort(t), freePort(t), freePort(t), freePort(t)))
	p := start(t, "site1-tandem", bins.tandem, "run", "-config", cfg)
	if !p.exited(10 * time.Second) {
		t.Fatalf("tandem still runs 10 s after it started on a read-only data_dir:\n%s", p.out.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.out.String(), "data_dir") {
		t.Errorf("exit code %d, want 1 with a data_dir error:\n%s", code, p.out.String())
	}
}

// TestSigtermDuringStartup: SIGTERM while a site starts — alone and not joined (its peer
// unreachable), while its first health check waits on a server that accepts but does not
// answer (health_timeout 20 s), while its on_promote hook runs (after promote -force) — stops
// it gracefully within the fast profile's bounds, exit 0, and leaves no hook process behind.
func TestSigtermDuringStartup(t *testing.T) {
	for _, tc := range []string{"not joined", "first health check", "on_promote running"} {
		t.Run(tc, func(t *testing.T) {
			dir := tempDir(t, "e2e-")
			srv := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			pidFile := filepath.Join(dir, "hook.pid")
			health, probe := "", ""
			switch tc {
			case "first health check":
				// Accepts (the backlog) and never answers.
				l, err := net.Listen("tcp", srv)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				health = "health_timeout = \"20s\"\n"
				probe = "health_send = \"PING\\n\"\nhealth_expect = \"PONG\"\n"
			default:
				start(t, "site1-server", bins.wireserver, "-listen", srv, "-name", "site1")
				waitDial(t, srv)
			}
			cfg := filepath.Join(dir, "site1.toml")
			writeFile(t, cfg, fmt.Sprintf(`site = "site1"
priority = 1
data_dir = %q
[gossip]
bind = "127.0.0.1:%d"
join = ["127.0.0.1:%d"]
profile = "fast"
[server]
health_interval = "100ms"
%s[[server.endpoint]]
name = "operators"
address = %q
%s[[proxy.listener]]
endpoint = "operators"
listen = "127.0.0.1:%d"
[admin]
listen = %q
[hooks]
on_promote = ["sh", "-c", "sleep 30 & echo $! > %s; wait"]
`, filepath.Join(dir, "data"), freePort(t), freePort(t), health, srv, probe, freePort(t), admin, pidFile))
			p := start(t, "site1-tandem", bins.tandem, "run", "-config", cfg)
			waitDial(t, admin)
			hookPid := 0
			if tc == "on_promote running" {
				if out, err := exec.Command(bins.tandem, "promote", "-force", "-config", cfg).CombinedOutput(); err != nil {
					t.Fatalf("promote -force: %v\n%s", err, out)
				}
				waitFor(t, 10*time.Second, "on_promote to start", func() bool {
					b, _ := os.ReadFile(pidFile)
					hookPid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
					return hookPid > 0
				})
				t.Cleanup(func() { _ = syscall.Kill(hookPid, syscall.SIGKILL) })
			}
			if tc == "first health check" {
				time.Sleep(500 * time.Millisecond) // the check has begun and waits for PONG
			}
			p.signal(t, syscall.SIGTERM)
			if !p.exited(5 * time.Second) {
				t.Fatal("site1's tandem did not exit within 5 s of SIGTERM")
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("site1's tandem: %v, want exit 0", p.cmd.ProcessState)
			}
			if hookPid > 0 && alive(hookPid) {
				t.Errorf("the on_promote hook's child (pid %d) outlived tandem", hookPid)
			}
		})
	}
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
