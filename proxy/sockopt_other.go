//go:build !linux

package proxy

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: a peer that vanishes
// while sent data waits for an ACK is noticed when retransmission gives up.
func setUserTimeout(syscall.RawConn) error { return nil }

// fdLimit is not read here.
func fdLimit() (uint64, bool) { return 0, false }
