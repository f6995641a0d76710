package txshim

import (
	"net"
	"syscall"
)

// idleConnGone tells, without waiting, whether a connection resting at ReadyForQuery has
// something to read already: from an idle backend that is the FATAL and the end it sends when
// it is ended (pg_terminate_backend, idle_session_timeout, the peer shutting down). Used as it
// stands, such a connection fails the next apply with an unknown outcome though the peer never
// saw the request; found here, it is dialled again instead. One non-blocking peek (MSG_PEEK):
// the bytes stay for pgconn to read.
func idleConnGone(c net.Conn) bool {
	gone := false
	var b [1]byte
	// Control, not Read: Read takes the descriptor's read lock, which a read pgconn left
	// waiting on it (its background reader, started for a large apply's writes, reads on until
	// bytes come) holds while the connection is idle — the peek waited for the peer's next
	// bytes, for ever. A peek does not take the bytes such a read waits for.
	onSocket(c, func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Bytes (n > 0), the end (n == 0 without error), or a reset: not EAGAIN.
		gone = err != syscall.EAGAIN && err != syscall.EINTR
	})
	return gone
}
