package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
)

// copyResult is one direction's outcome.
type copyResult struct {
	up      bool // client to server
	n       int64
	err     error
	stopped bool // stopped by the end of a drain (conn.endDrain), both sides left open
	dropped bool // read bytes of src's it did not write to dst (copyStream)
}

// copyBoth copies client→server on the calling goroutine and server→client
// on one more, until both directions are done. It returns the bytes moved
// each way and the first error (nil when both sides closed cleanly).
func (s *Server) copyBoth(c *conn, up *net.TCPConn) (upN, downN int64, err error) {
	if c.ending.Load() {
		// The drain's end came before the copy, as connect returned: its client watch, stopping,
		// clears the client's read deadline (clientWatch.stop), which may be endDrain's, and the
		// copy would then wait in a read of an operator that sends nothing. Set again. endDrain
		// sets ending before its deadlines, and the watch stopped before this load: one that
		// finds ending unset comes before endDrain's deadlines, which stay.
		c.endDrain()
	}
	done := make(chan copyResult, 2)
	go proxyCopy(done, false, c.client, up, s.pipes, &c.ending)
	proxyCopy(done, true, up, c.client, s.pipes, &c.ending)
	stopped, movedOn := false, false
	for range 2 {
		r := <-done
		if r.up {
			upN = r.n
		} else {
			downN = r.n
		}
		if err == nil {
			err = r.err
		}
		stopped = stopped || r.stopped
		// The operator's bytes the copy read as the drain's end stopped it: its next request,
		// which reaches no server — neither queued still (operatorMovedOn) nor, where they came
		// just before the end, new (sentSince).
		movedOn = movedOn || r.up && r.stopped && r.dropped
	}
	if stopped {
		// The end of the drain that kept c stopped a copy (conn.endDrain): the server's last
		// reply goes on to the operator, then both sides are reset. One is owed only where the
		// operator's bytes reached the server.
		downN += c.finishDrain(up, c.sentUp+upN > 0, movedOn)
		c.abort()
	}
	return upN, downN, err
}

// copyCounted is io.Copy(dst, src) that also says whether bytes read from src were not
// written to dst (copyStream's dropped).
func copyCounted(dst, src *net.TCPConn) (int64, bool, error) {
	r := &countingReader{r: src}
	n, err := io.Copy(dst, r)
	return n, r.n > n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// proxyCopy copies src to dst until src's EOF, then half-closes dst so the
// other side sees the FIN while the opposite direction keeps flowing. On an
// error it closes both, which ends the opposite direction too; a side reset
// or gone is passed on as a reset, so the peer cannot take an aborted stream
// for a whole one. (A cut, the idle timeout and shutdown close both sides
// here, net.ErrClosed: conn.abort resets them itself.) A deadline once ending is set (the end
// of a drain, conn.endDrain, which sets the deadlines) stops the copy and closes nothing:
// copyBoth ends the connection.
//
// Bulk bytes move with splice(2) through a kernel pipe (copyStream, DESIGN.md §4), a token of
// pipes held while they move; a few at a time, through a read and a write.
func proxyCopy(done chan<- copyResult, up bool, dst, src *net.TCPConn, pipes chan struct{}, ending *atomic.Bool) {
	n, dropped, err := copyStream(dst, src, pipes)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && ending.Load() {
		done <- copyResult{up: up, n: n, err: err, stopped: true, dropped: dropped}
		return
	}
	if err == nil {
		// Fails when dst is gone already (reset, ENOTCONN): the opposite direction may be
		// waiting on src with dst's last bytes and not have seen that, so it is passed on
		// here, as a reset too.
		err = dst.CloseWrite()
	}
	if err != nil {
		if !errors.Is(err, net.ErrClosed) {
			_ = src.SetLinger(0)
			_ = dst.SetLinger(0)
		}
		src.Close()
		dst.Close()
	}
	done <- copyResult{up: up, n: n, err: err}
}
