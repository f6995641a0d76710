//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// killGroup runs the hook in its own process group and kills the whole group when it times
// out or is stopped, so a shell's children go too.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
