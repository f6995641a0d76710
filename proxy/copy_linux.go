package proxy

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyStream copies src to dst until src's end, with splice(2) like io.Copy between two
// *net.TCPConn, but holds the kernel pipe splice moves bytes through only while they move.
// io.Copy waits for src's next bytes inside its splice, holding its pipe — two descriptors
// per direction, four per connection on top of its two sockets, for the connection's whole
// life, idle or not. Here the wait is on src alone (RawConn.Read: the runtime's poller), and
// each splice takes just what src has queued (SIOCINQ), so it never waits for src with a pipe
// in hand (only for a dst that does not read). An idle connection then holds its two sockets
// and nothing else (fdsPerConn). A splice takes a token of pipes for as long as it runs;
// when every token is taken, the bytes go through a user-space buffer instead. A few bytes at
// a time (request and reply) go through a read and a write (readWoken), where a splice takes
// an SIOCINQ and two calls: what a wake-up finds beyond one buffer is spliced.
//
// TCP urgent data (a byte sent with MSG_OOB) is not forwarded — a read skips it — but the
// bytes around it are. A splice stops at the urgent mark and never steps over it (after the
// source's end it returns nothing, which io.Copy took for the end, dropping the rest), so the
// bytes at the mark go through a read (waitQueued: atMark).
//
// dropped: the copy read bytes of src's that it did not write to dst — a write that failed,
// as on the past deadline of a drain's end (conn.endDrain), which stops a read only where it
// has not taken the bytes already (finishDrain: the operator's next request, dropped).
func copyStream(dst, src *net.TCPConn, pipes chan struct{}) (written int64, dropped bool, err error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return copyCounted(dst, src)
	}
	lr := &io.LimitedReader{R: src}
	bulk := false
	for {
		if !bulk {
			// Operators' requests and replies are a few bytes at a time: one read of what
			// is queued and one write, where waiting for a count and splicing it takes three
			// calls (and a pipe). A full buffer says more is queued: splice from there on.
			n, read, err := readWoken(rc, dst)
			written += int64(n)
			if err != nil || n == 0 {
				return written, read > n, err // n 0: src's end
			}
			bulk = n == smallCopy
			continue
		}
		queued, atMark, err := waitQueued(rc)
		if err != nil || queued == 0 {
			return written, false, err // queued 0: src's end
		}
		bulk = queued > smallCopy
		lr.N = int64(queued)
		var n int64
		if bulk && !atMark {
			select {
			case pipes <- struct{}{}:
				n, err = dst.ReadFrom(lr) // splice (a plain copy when no pipe can be made)
				<-pipes
			default:
			}
		}
		if err == nil && n == 0 {
			// A few bytes, no pipe, at the urgent mark, or a splice that moved nothing
			// though bytes were queued (a read takes them, rather than a loop that would spin).
			n, err = copyPlain(dst, lr)
		}
		written += n
		if err != nil {
			// Bytes taken from lr and not written were read from src and dropped (a splice
			// counts only what it wrote: what its pipe held when the write failed is not seen).
			return written, int64(queued)-lr.N > n, err
		}
	}
}

// smallCopy: reads take at most this many bytes; a wake-up that finds more queued splices them.
const smallCopy = 16 << 10

// readWoken waits until src has bytes or its end, reads at most smallCopy of them and writes
// them to dst: it returns how many it wrote, 0 at src's end, and how many it read. The buffer
// is taken only once bytes are there, so a connection waiting holds none. A read steps over
// TCP urgent data.
func readWoken(rc syscall.RawConn, dst *net.TCPConn) (written, read int, err error) {
	var b *[]byte
	n := 0
	var serr error
	err = rc.Read(func(fd uintptr) bool {
		if h := wokenReadHook.Load(); h != nil {
			(*h)(fd)
		}
		b = plainBufs.Get().(*[]byte)
		var err error
		n, err = unix.Read(int(fd), (*b)[:smallCopy])
		for err == unix.EINTR {
			n, err = unix.Read(int(fd), (*b)[:smallCopy])
		}
		if err == unix.EAGAIN {
			plainBufs.Put(b)
			b, n = nil, 0
			return false
		}
		if err != nil {
			n, serr = 0, os.NewSyscallError("read", err)
		}
		return true
	})
	if b == nil {
		return 0, 0, err
	}
	defer plainBufs.Put(b)
	if err == nil {
		err = serr
	}
	if err != nil || n == 0 {
		return 0, 0, err
	}
	written, err = dst.Write((*b)[:n])
	return written, n, err
}

// wokenReadHook, where set (tests only), runs in readWoken before each read of a source, with
// its descriptor: a test holds a read there to order it against the end of a drain.
var wokenReadHook atomic.Pointer[func(fd uintptr)]

// plainBufs are copyPlain's buffers.
var plainBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyPlain copies through a user-space buffer: what dst.ReadFrom would splice.
func copyPlain(dst *net.TCPConn, src io.Reader) (int64, error) {
	b := plainBufs.Get().(*[]byte)
	defer plainBufs.Put(b)
	// Hidden from io.CopyBuffer: dst's ReadFrom, which would splice.
	return io.CopyBuffer(struct{ io.Writer }{dst}, src, *b)
}

// waitQueued waits until the socket has bytes queued to read, or its end: it returns how many
// are queued, 0 at the end of the stream, or the socket's error. atMark: the next byte is TCP
// urgent data, which a read steps over and a splice does not; SIOCINQ counts the bytes before
// the mark only, so there it says none though a peek sees the bytes behind it.
func waitQueued(rc syscall.RawConn) (queued int, atMark bool, err error) {
	var serr error
	woken := false
	err = rc.Read(func(fd uintptr) bool {
		// After a wake-up bytes are the likely news: their count first. Otherwise, and when
		// none are queued, one peek tells bytes from the end, an error or nothing yet — and
		// only "nothing yet" waits, so an end that came before the wait is never missed.
		if woken {
			n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			if err != nil || n > 0 {
				queued, serr = n, os.NewSyscallError("ioctl", err)
				return true
			}
		}
		woken = true
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		for err == unix.EINTR {
			n, _, err = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		}
		switch {
		case err == unix.EAGAIN:
			return false
		case err != nil:
			serr = os.NewSyscallError("recvfrom", err)
		case n > 0:
			n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
			queued, atMark, serr = max(n, 1), n == 0, os.NewSyscallError("ioctl", err)
		}
		return true // n == 0: the end, queued stays 0
	})
	if err != nil {
		return 0, false, err
	}
	return queued, atMark, serr
}
