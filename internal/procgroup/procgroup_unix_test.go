//go:build unix

package procgroup

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/proctest"
)

// TestKillOnCancel: when the context ends, a shell's background child goes with the shell.
// Without KillOnCancel, exec kills the shell alone and the child sleeps on.
func TestKillOnCancel(t *testing.T) {
	child := proctest.NewChild(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", child.Script("wait"))
	KillOnCancel(cmd)
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Run(); err == nil {
		t.Fatal("the shell exited 0; it should have been killed")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %s after a 300ms timeout", took)
	}
	child.WaitGone(t, 5*time.Second)
}
