package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// errClientLeft ends the wait of a client that closed or reset its connection before a
// master's server was reached.
var errClientLeft = errors.New("client left while waiting for the master's server")

// waitBufMax bounds what a waiting client's watch reads ahead of the server: enough for a
// PostgreSQL startup message or a TLS ClientHello. The rest waits in the kernel.
const waitBufMax = 16 << 10

// clientWatch reads a client's socket while its connection waits for a master (or for the
// master's server to come back), so that a client that leaves is noticed then and not when
// its server connection is already made: a client retrying every second during a failover
// would otherwise leave connections behind that each hold a max_conns slot until a master
// appears, and then a server session opened, PROXY header and all, for nobody. What the client
// sends meanwhile is kept for the server. Only a connection that has to wait runs one: its
// goroutine ends before the copy loop starts.
type clientWatch struct {
	client *net.TCPConn
	cancel context.CancelCauseFunc
	done   chan struct{}
	buf    []byte // what the client sent, read by run until done is closed
}

// watchClient starts watching client, which sent pending already (after its PROXY header).
// The returned context ends with errClientLeft as its cause when the client closes without
// having sent anything, or resets.
func watchClient(ctx context.Context, client *net.TCPConn, pending []byte) (context.Context, *clientWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &clientWatch{client: client, cancel: cancel, done: make(chan struct{}), buf: pending}
	go w.run()
	return ctx, w
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
	_ = w.client.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	_ = w.client.SetReadDeadline(time.Time{})
	w.cancel(nil)
	return w.buf
}
