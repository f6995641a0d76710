//go:build unix

// Package proctest is test support: it checks that a background child a test's shell command
// started (a daemon left by a hook or a health command) is gone, and kills it when a test ends
// either way.
package proctest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Child is the background child of a shell command made with Script: `sleep 30`, its pid
// written to a file.
type Child struct {
	file string
}

// NewChild returns a Child whose pid file is in a temp dir of tb; when tb ends, the child is
// killed if it was started.
func NewChild(tb testing.TB) *Child {
	c := &Child{file: filepath.Join(tb.TempDir(), "child.pid")}
	tb.Cleanup(func() {
		if pid, err := c.pid(); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return c
}

// Script is a shell script that starts the child in the background, then runs then.
func (c *Child) Script(then string) string {
	return "sleep 30 & echo $! > " + c.file + "; " + then
}

func (c *Child) pid() (int, error) {
	b, err := os.ReadFile(c.file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// WaitGone fails tb unless the child was started and is gone within d.
func (c *Child) WaitGone(tb testing.TB, d time.Duration) {
	tb.Helper()
	pid, err := c.pid()
	if err != nil {
		tb.Fatalf("the child's pid: %v", err)
	}
	for deadline := time.Now().Add(d); Alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("the child %d still runs %s later", pid, d)
		}
	}
}

// Alive reports whether process pid exists and is not a zombie: a killed child whose parent
// died too may be left unreaped by an init that does not reap, and is dead all the same.
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
