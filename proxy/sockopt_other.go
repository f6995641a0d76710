//go:build !linux

package proxy

import (
	"net"
	"syscall"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: a peer that vanishes
// while sent data waits for an ACK is noticed when retransmission gives up.
func setUserTimeout(syscall.RawConn) error { return nil }

// fdLimit is not read here.
func fdLimit() (uint64, bool) { return 0, false }

// leftAlready does not look here: a client that left before its server was dialled is
// noticed by the copy loop.
func leftAlready(*net.TCPConn, bool) error { return nil }
