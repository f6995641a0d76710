//go:build !linux

package proxy

import (
	"net"
	"time"
)

// idleSupported is false where the kernel's per-socket data timestamps are
// not read; idle_timeout is then ignored (New warns), and a peer gone in the
// middle of a reply is noticed when retransmission gives up.
const idleSupported = false

func sinceData(*net.TCPConn) (time.Duration, bool) { return 0, false }

func stalled(*net.TCPConn, time.Duration) bool { return false }

// idleAtDrainEnd is not known here: the end of a drain takes every connection for one a reply
// may be owed on (finishDrain).
func idleAtDrainEnd(*net.TCPConn, time.Duration) bool { return false }

func sentSince(*net.TCPConn, time.Time) bool { return false }
