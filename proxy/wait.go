package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// errClientLeft refuses a connection whose client closed or reset it before a master's
// server was reached.
var errClientLeft = errors.New("client left before the server was reached")

// waitBufMax bounds what a waiting client's watch reads ahead of the server: enough for a
// PostgreSQL startup message or a TLS ClientHello. The rest waits in the kernel.
const waitBufMax = 16 << 10

// watchAfter is how long a dial may take before the client is watched: longer than a dial
// to a server that answers takes, even across sites.
const watchAfter = 100 * time.Millisecond

// clientWatch reads a client's socket while its connection waits for a master, for a dial
// to one that does not answer (a partitioned site) or for its server to come back, so that
// a client that leaves is noticed then and not when its server connection is already made:
// a client retrying every second during a failover would otherwise leave connections behind
// that each hold a max_conns slot until a master appears, and then a server session opened,
// PROXY header and all, for nobody. What the client sends meanwhile is kept for the server.
// A connection whose first dial succeeds at once never starts one; the goroutine of one that
// started ends before the copy loop starts.
type clientWatch struct {
	client  *net.TCPConn
	cancel  context.CancelCauseFunc
	timer   *time.Timer // starts the watch when a dial takes watchAfter
	started atomic.Bool // run was started, or stop made sure it never will be
	done    chan struct{}
	buf     []byte // pending, then what the client sent, written by run until done is closed
}

// watchClient prepares to watch client, which sent pending already (after its PROXY
// header). The returned context ends with errClientLeft as its cause when the watch sees the
// client close without having sent anything, or reset. The watch runs from start, or from
// watchAfter on, until stop.
func watchClient(ctx context.Context, client *net.TCPConn, pending []byte) (context.Context, *clientWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &clientWatch{client: client, cancel: cancel, done: make(chan struct{}), buf: pending}
	w.timer = time.AfterFunc(watchAfter, w.start)
	return ctx, w
}

// start begins the watch unless it runs already or was stopped.
func (w *clientWatch) start() {
	if w.started.CompareAndSwap(false, true) {
		go w.run()
	}
}

func (w *clientWatch) run() {
	defer close(w.done)
	for len(w.buf) < waitBufMax {
		if len(w.buf) == cap(w.buf) {
			grown := make([]byte, len(w.buf), min(max(2*cap(w.buf), 1<<10), waitBufMax))
			copy(grown, w.buf)
			w.buf = grown
		}
		n, err := w.client.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded): // stop
			return
		case errors.Is(err, io.EOF) && len(w.buf) > 0:
			// A request, then a half-close (a fully closed socket looks the same until
			// something is written to it): the server still gets the request and the FIN.
			return
		default:
			w.cancel(fmt.Errorf("%w: %w", errClientLeft, err))
			return
		}
	}
}

// stop ends the watch and returns pending with what the client sent during the watch: all
// of it must reach the server before anything else the client sends.
func (w *clientWatch) stop() []byte {
	w.timer.Stop()
	defer w.cancel(nil)
	if w.started.CompareAndSwap(false, true) {
		return w.buf // never started, and now never will
	}
	_ = w.client.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	_ = w.client.SetReadDeadline(time.Time{}) // endDrain's too, if it came meanwhile: copyBoth sets it again
	return w.buf
}
