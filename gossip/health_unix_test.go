//go:build unix

package gossip

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/proctest"
)

// TestCheckerExecLeavesChild: a health command that exits 0 is a healthy verdict even when a
// child it started still holds its output (a helper left running, an ssh control master):
// the wait for the output ends, but the check must not count as failed.
func TestCheckerExecLeavesChild(t *testing.T) {
	t.Parallel()
	child := proctest.NewChild(t)
	r := runChecker(t, config.Server{
		Health: config.HealthExec, HealthCommand: []string{"sh", "-c", child.Script("exit 0")},
		HealthInterval: time.Minute, HealthTimeout: 2 * time.Second, HealthFailures: 1,
	})
	waitFor(t, 5*time.Second, "a verdict", func() bool { return len(r.list()) > 0 })
	if got := r.list()[0]; !got {
		t.Fatal("a health command that exited 0 was taken for a failed check")
	}
}

// TestCheckerExecTimeoutKillsChild: a health command that outlives health_timeout is killed
// with the children it started (its process group), and the check counts as failed: a child
// left sleeping would pile up, one per check, on a server that hangs.
func TestCheckerExecTimeoutKillsChild(t *testing.T) {
	t.Parallel()
	child := proctest.NewChild(t)
	r := runChecker(t, config.Server{
		Health: config.HealthExec, HealthCommand: []string{"sh", "-c", child.Script("wait")},
		HealthInterval: time.Minute, HealthTimeout: 300 * time.Millisecond, HealthFailures: 1,
	})
	waitFor(t, 5*time.Second, "a verdict", func() bool { return len(r.list()) > 0 })
	if got := r.list()[0]; got {
		t.Fatal("a health command that timed out was taken for a healthy check")
	}
	child.WaitGone(t, 5*time.Second)
}

// TestCheckerOutOfDescriptors: a check that cannot open its socket because the process is out
// of file descriptors (EMFILE) is no verdict on the server: a healthy site stays healthy
// rather than give up its role and cut every connection for its own shortage; once
// descriptors are free again, checks count as before. It runs in a child test process whose
// open-file limit is lowered and then used up.
func TestCheckerOutOfDescriptors(t *testing.T) {
	t.Parallel()
	if os.Getenv("GOSSIP_EMFILE_CHILD") == "" {
		child := exec.Command(os.Args[0], "-test.run=^TestCheckerOutOfDescriptors$", "-test.v")
		child.Env = append(os.Environ(), "GOSSIP_EMFILE_CHILD=1")
		if out, err := child.CombinedOutput(); err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256}); err != nil {
		t.Fatal(err)
	}
	l := closingListener(t)
	r := runChecker(t, config.Server{
		Health: config.HealthTCP, HealthInterval: 20 * time.Millisecond, HealthTimeout: 200 * time.Millisecond, HealthFailures: 1,
		Endpoints: []config.Endpoint{{Name: "operators", Address: l.Addr().String()}},
	})
	waitFor(t, 2*time.Second, "healthy reported", func() bool { return equalBools(r.list(), []bool{true}) })
	var held []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		held = append(held, f)
	}
	time.Sleep(300 * time.Millisecond) // 15 checks, each failing with EMFILE
	got := r.list()
	for _, f := range held {
		f.Close()
	}
	if !equalBools(got, []bool{true}) {
		t.Fatalf("reports %v while out of descriptors, want only the first healthy one", got)
	}
	l.Close()
	waitFor(t, 2*time.Second, "unhealthy reported after the listener closed", func() bool { return equalBools(r.list(), []bool{true, false}) })
}

// TestCheckerExecSecrets: a health command gets the sidecar's environment as a hook does (README
// hooks.on_promote): without $TANDEM_GOSSIP_KEY, and with $PGPASSWORD, masked in the output
// tandem logs. A failing check logs the command's output ("server unhealthy"): one that printed
// its environment, or ran under set -x, wrote the gossip key and the database password into the
// sidecar's log.
func TestCheckerExecSecrets(t *testing.T) {
	t.Setenv(config.GossipKeyEnv, "gossipkeysecret0123456789abcdef")
	t.Setenv("PGPASSWORD", "pg'pw-secret")
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 5 * time.Second,
		HealthCommand: []string{"bash", "-xc", `echo "key=$TANDEM_GOSSIP_KEY pw=$PGPASSWORD"; exit 1`},
	}, nil)
	err := c.checkExec(t.Context())
	if err == nil {
		t.Fatal("a health command that exits 1 passed")
	}
	for _, secret := range []string{"gossipkeysecret", "pw-secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the failed check's error, which is logged, holds a secret: %v", err)
		}
	}
	if !strings.Contains(err.Error(), "pw=<PGPASSWORD>") {
		t.Errorf("error %v: want the password masked as <PGPASSWORD>", err)
	}
}

// TestCheckerExecOutputBounded: a health command that prints without end (a `yes`, a `cat` of
// a log by mistake) until it fails or times out must not fill the sidecar's memory: only the
// first bytes of its output are ever logged, so only those are kept. The whole output was
// gathered in memory, every health_interval.
func TestCheckerExecOutputBounded(t *testing.T) {
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 30 * time.Second,
		HealthCommand: []string{"sh", "-c", "echo first line; head -c 100000000 /dev/zero; exit 1"},
	}, nil)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := c.checkExec(t.Context())
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a health command that exits 1 passed")
	}
	if !strings.Contains(err.Error(), "first line") {
		t.Errorf("error %v: want the start of the output", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Fatalf("one check of a command that printed 100 MB allocated %d MB", alloc>>20)
	}
}

// TestCheckerExecLeavesChildNearTimeout: a health command that exits 0 shortly before
// health_timeout, leaving a child that holds its output, passed: it was taken for one that
// timed out, because the timeout had passed by the end of the wait for that output.
func TestCheckerExecLeavesChildNearTimeout(t *testing.T) {
	child := proctest.NewChild(t)
	done := filepath.Join(t.TempDir(), "done") // written as the command exits: when it did
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 500 * time.Millisecond,
		HealthCommand: []string{"sh", "-c", child.Script("sleep 0.42; echo > " + done + "; exit 0")},
	}, nil)
	start := time.Now()
	err := c.checkExec(t.Context())
	if fi, serr := os.Stat(done); serr != nil || fi.ModTime().After(start.Add(480*time.Millisecond)) {
		t.Skip("the command did not get to its exit well within its timeout: the machine is too slow for this test")
	}
	if err != nil {
		t.Fatalf("a health command that exited 0 after 0.42 s of its 0.5 s timeout: %v", err)
	}
}

// TestCheckerExecHealthDaemonKeepsWriting: a daemon a health command starts (a helper left
// running) that keeps the command's output and writes to it after the check is over goes on,
// as a hook's does (cmd/tandem's TestHookDaemonKeepsWriting). The check closed its end of the
// output pipe 100 ms after the command exited, and the daemon's next write killed it with
// SIGPIPE.
func TestCheckerExecHealthDaemonKeepsWriting(t *testing.T) {
	t.Parallel()
	mark := filepath.Join(t.TempDir(), "mark")
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 5 * time.Second,
		HealthCommand: []string{"sh", "-c", "echo starting; (sleep 0.6; echo still running; touch " + mark + ") &"},
	}, nil)
	start := time.Now()
	if err := c.checkExec(t.Context()); err != nil {
		t.Fatalf("a health command that exited 0, leaving a daemon: %v", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("the check took %s: it waited for the daemon the command started", took)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon the health command started died at its first write after the check (SIGPIPE)")
		}
	}
}

// TestCheckerExecOutputCutOnRune: a failed health command's output, cut for the log, is cut at
// a character's start: cut at 200 bytes, it split a character of two bytes there and left
// invalid UTF-8 in the error, which is logged.
func TestCheckerExecOutputCutOnRune(t *testing.T) {
	c := NewChecker(config.Server{
		Health: config.HealthExec, HealthTimeout: 5 * time.Second,
		HealthCommand: []string{"sh", "-c", "printf '" + strings.Repeat("a", 199) + strings.Repeat("é", 10) + "'; exit 1"},
	}, nil)
	err := c.checkExec(t.Context())
	if err == nil {
		t.Fatal("a health command that exits 1 passed")
	}
	if !utf8.ValidString(err.Error()) {
		t.Errorf("error %q: invalid UTF-8", err)
	}
	if !strings.Contains(err.Error(), strings.Repeat("a", 199)+"…") {
		t.Errorf("error %q: want the output up to the character cut, then …", err)
	}
}
