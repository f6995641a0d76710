//go:build !linux

package proxy

import "net"

// fdLimit is not read here.
func fdLimit() (uint64, bool) { return 0, false }

// leftAlready does not look here: a client that left before its server was dialled is
// noticed by the copy loop.
func leftAlready(*net.TCPConn, bool) error { return nil }

// unackedKnown: unacked does not read the socket here; the end of a drain gives the operator
// until its bound to take what was sent to it (finishDrain).
const unackedKnown = false

// unacked is not known here.
func unacked(*net.TCPConn) (int, bool) { return 0, false }

// operatorMovedOn is not known here: the end of a drain does not take an operator's next
// request for the end of its reply (finishDrain).
func operatorMovedOn(*net.TCPConn) bool { return false }
