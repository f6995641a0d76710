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
	ended := false
	onSocket(c, func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n > 0 {
			ended = fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
		}
	})
	return ended
}

// connTaken returns a count that changes as the other end of c reads what is written to it,
// and whether it could tell: for TCP the bytes it acknowledged (TCP_INFO's tcpi_bytes_acked,
// which a receiver whose buffer is full acknowledges only as it reads), for a Unix socket the
// bytes it has not read yet (SIOCOUTQ), which a writer blocked on a full buffer does not add
// to until much of it has been read.
func connTaken(c net.Conn) (uint64, bool) {
	_, tcp := socketOf(c).(*net.TCPConn)
	var n uint64
	known := false
	onSocket(c, func(fd uintptr) {
		if tcp {
			if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				n, known = ti.Bytes_acked, true
			}
			return
		}
		if q, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
			n, known = uint64(q), true
		}
	})
	return n, known
}

// onSocket runs f on the descriptor of c's socket (the one under a TLS connection), through
// Control: without taking the descriptor's read or write lock, which a read or write waiting
// on it holds. Nothing runs for a connection without one.
func onSocket(c net.Conn, f func(fd uintptr)) {
	sc, ok := socketOf(c).(syscall.Conn)
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		_ = rc.Control(f)
	}
}

// socketOf is c, or the connection under it when c is a TLS connection.
func socketOf(c net.Conn) net.Conn {
	if t, ok := c.(interface{ NetConn() net.Conn }); ok {
		return t.NetConn()
	}
	return c
}
