package main

import "syscall"

// dieWithDemo makes a process the demo starts die with the demo, when the demo is killed before
// it can stop it (kill -9, or go test's -timeout, which runs no cleanups): a sidecar or server
// left behind would retry its peer for ever.
func dieWithDemo() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
