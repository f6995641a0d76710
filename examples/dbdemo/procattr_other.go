//go:build !linux

package main

import "syscall"

// dieWithDemo is nil where there is no parent death signal: close alone stops the processes.
func dieWithDemo() *syscall.SysProcAttr { return nil }
