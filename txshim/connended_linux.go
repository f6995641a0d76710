package txshim

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// connEnded tells, without waiting and without taking any byte, whether the other end of c
// has ended its side (its FIN, or a reset), however much it sent before that is still unread:
// poll's POLLRDHUP, which a peek would not tell from bytes waiting.
func connEnded(c net.Conn) bool {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok { // TLS: the socket under it
		c = t.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ended := false
	_ = rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			ended = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return ended
}
