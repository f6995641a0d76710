package proxy

import (
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// fdLimit returns the process's open-file limit (RLIMIT_NOFILE, the soft one: Go raises it to
// the hard one at start).
func fdLimit() (uint64, bool) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return r.Cur, true
}

// leftAlready tells, without waiting, whether client has left: closed having sent nothing
// (sent: it sent bytes already, so a close only ends its request, as clientWatch decides) or
// reset. One non-blocking peek, no delay for a server that speaks first: a client that is
// still there costs one EAGAIN.
func leftAlready(client *net.TCPConn, sent bool) error {
	n, ok, rerr := peekReceived(client)
	switch {
	case !ok, rerr == unix.EAGAIN || rerr == unix.EINTR:
		return nil
	case rerr != nil:
		return fmt.Errorf("%w: %w", errClientLeft, os.NewSyscallError("recvfrom", rerr))
	case n == 0 && !sent:
		return fmt.Errorf("%w: %w", errClientLeft, io.EOF)
	}
	return nil
}

// unackedKnown: unacked reads the socket's send queue (SIOCOUTQ).
const unackedKnown = true

// unacked returns how many bytes sent on c its peer has not acknowledged yet, those not sent
// yet included (SIOCOUTQ).
func unacked(c *net.TCPConn) (int, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCOUTQ) }); err != nil || ierr != nil {
		return 0, false
	}
	return n, true
}

// operatorMovedOn tells, without waiting, whether client sent bytes that are still queued (the
// copy of its direction stopped at the end of a drain: its next request) or reset: in either
// case it is past the reply it was waiting for (finishDrain). Its FIN is not: an operator that
// closes its sending side once it has asked (shutdown(SHUT_WR), passed on as a half-close)
// still reads the reply; one that closed both sides resets at the proxy's next write.
func operatorMovedOn(client *net.TCPConn) bool {
	n, ok, rerr := peekReceived(client)
	if !ok {
		return false
	}
	if rerr != nil {
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	}
	return n > 0
}

// peekReceived looks, without waiting and without taking it, at what c received that was not
// read yet: n is 1 where bytes are queued, 0 at the peer's FIN; rerr is the peek's error
// (EAGAIN or EINTR: nothing yet; ECONNRESET: the peer reset). ok is false where the socket
// could not be reached, and nothing is known.
func peekReceived(c *net.TCPConn) (n int, ok bool, rerr error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	if err := rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	}); err != nil {
		return 0, false, nil
	}
	return n, true, rerr
}
