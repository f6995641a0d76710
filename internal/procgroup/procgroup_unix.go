//go:build unix

package procgroup

import (
	"os/exec"
	"syscall"
)

// KillOnCancel makes cmd, made by exec.CommandContext and not started yet, run in a process
// group of its own, and makes the end of its context kill that whole group (SIGKILL) rather
// than cmd's process alone.
func KillOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
