//go:build unix

package procgroup

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// Alive reports whether process pid exists and is not a zombie: a killed child whose parent
// died too may be left unreaped by an init that does not reap, and is dead all the same. Tests
// use it to check that a group is gone.
func Alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no /proc: existing is all we can tell
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
