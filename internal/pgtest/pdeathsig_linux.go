package pgtest

import "syscall"

// dieWithParent has the postmaster killed when the process that started it dies without
// closing it (go test's -timeout, kill -9).
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
