package proxy

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

const idleSupported = true

// sinceData returns how long ago c's socket last sent or received data, as
// the kernel tracks it (tcpi_last_data_sent, tcpi_last_data_recv).
func sinceData(c *net.TCPConn) (time.Duration, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil {
		return 0, false
	}
	ms := min(info.Last_data_sent, info.Last_data_recv)
	return time.Duration(ms) * time.Millisecond, true
}
