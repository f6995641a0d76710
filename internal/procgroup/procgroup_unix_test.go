//go:build unix

package procgroup

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillOnCancel: when the context ends, a shell's background child goes with the shell.
// Without KillOnCancel, exec kills the shell alone and the child sleeps on.
func TestKillOnCancel(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", "sleep 30 & echo $! > "+pidFile+"; wait")
	KillOnCancel(cmd)
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Run(); err == nil {
		t.Fatal("the shell exited 0; it should have been killed")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %s after a 300ms timeout", took)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	deadline := time.Now().Add(5 * time.Second)
	for Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the shell's child %d still runs after its group was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Error("Alive(own pid) = false")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid) {
		t.Errorf("Alive(%d) = true for a reaped process", cmd.Process.Pid)
	}
}
