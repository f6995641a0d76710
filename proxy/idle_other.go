//go:build !linux

package proxy

import (
	"net"
	"time"
)

// idleSupported is false where the kernel's per-socket data timestamps are
// not read; idle_timeout is then ignored (New warns).
const idleSupported = false

func sinceData(*net.TCPConn) (time.Duration, bool) { return 0, false }
