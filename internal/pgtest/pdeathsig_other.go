//go:build !linux

package pgtest

import "syscall"

// dieWithParent does nothing where there is no parent death signal: there a postmaster whose
// process died without closing it runs on until stopped by hand.
func dieWithParent(*syscall.SysProcAttr) {}
