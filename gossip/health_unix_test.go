//go:build unix

package gossip

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/proctest"
)

// TestCheckerExecLeavesChild: a health command that exits 0 is a healthy verdict even when a
// child it started still holds its output (a helper left running, an ssh control master):
// the wait for the output ends, but the check must not count as failed.
func TestCheckerExecLeavesChild(t *testing.T) {
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
