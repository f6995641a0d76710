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
