package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// countProxy relays PostgreSQL connections to a server and counts the frontend messages that
// end a request: Sync ('S') in the extended protocol and Query ('Q') in the simple one. Put
// between the shim and a database, it tells how many requests each transaction costs, and how
// many turns: requests sent after a reply came, so that requests pipelined behind one another
// count once — the round trips the client really waits for.
type countProxy struct {
	ln     net.Listener
	target string

	syncs, queries, msgs, conns, turns atomic.Int64

	mu    sync.Mutex
	open  map[net.Conn]struct{}
	wg    sync.WaitGroup
	close sync.Once
}

func newCountProxy(target string) (*countProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("count proxy: %w", err)
	}
	p := &countProxy{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

func (p *countProxy) addr() string { return p.ln.Addr().String() }

func (p *countProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, s) {
			return
		}
		p.conns.Add(1)
		p.wg.Add(2)
		replied := new(atomic.Bool) // the backend sent bytes since the last turn counted
		replied.Store(true)
		go func() { // backend → client, unparsed
			defer p.wg.Done()
			_, _ = io.Copy(c, &replyReader{r: s, replied: replied})
			c.Close()
		}()
		go func() { // client → backend, counted
			defer p.wg.Done()
			_ = p.countCopy(s, c, replied)
			s.Close()
		}()
	}
}

// track registers a connection pair, or closes it when the proxy is closing.
func (p *countProxy) track(c, s net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		c.Close()
		s.Close()
		return false
	}
	p.open[c], p.open[s] = struct{}{}, struct{}{}
	return true
}

// replyReader reads the backend's side of a connection, noting that bytes came.
type replyReader struct {
	r       io.Reader
	replied *atomic.Bool
}

func (r *replyReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.replied.Store(true)
	}
	return n, err
}

// countCopy forwards frontend messages from src to dst, counting them; a request that ends
// after the backend replied (replied) begins a turn. The first messages of a connection have no
// type byte (SSLRequest, GSSENCRequest, StartupMessage, CancelRequest).
func (p *countProxy) countCopy(dst io.Writer, src io.Reader, replied *atomic.Bool) error {
	br := bufio.NewReaderSize(src, 32<<10)
	bw := bufio.NewWriterSize(dst, 32<<10)
	untyped := true
	hdr := make([]byte, 5)
	for {
		var typ byte
		var n uint32
		if untyped {
			if _, err := io.ReadFull(br, hdr[:4]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint32(hdr[:4])
			if _, err := bw.Write(hdr[:4]); err != nil {
				return err
			}
		} else {
			if _, err := io.ReadFull(br, hdr); err != nil {
				return err
			}
			typ, n = hdr[0], binary.BigEndian.Uint32(hdr[1:])
			if _, err := bw.Write(hdr); err != nil {
				return err
			}
		}
		if n < 4 {
			return errors.New("count proxy: bad message length")
		}
		body := int64(n - 4)
		if untyped && body >= 4 {
			code, err := br.Peek(4)
			if err != nil {
				return err
			}
			// 80877103 SSLRequest, 80877104 GSSENCRequest and 80877102 CancelRequest are
			// followed by another untyped message or nothing; anything else is the startup.
			switch binary.BigEndian.Uint32(code) {
			case 80877103, 80877104, 80877102:
			default:
				untyped = false
			}
		}
		if _, err := io.CopyN(bw, br, body); err != nil {
			return err
		}
		if typ != 0 {
			p.msgs.Add(1)
			switch typ {
			case 'S':
				p.syncs.Add(1)
			case 'Q':
				p.queries.Add(1)
			}
			if (typ == 'S' || typ == 'Q') && replied.Swap(false) {
				p.turns.Add(1)
			}
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
	}
}

// requests is the number of Sync and Query messages seen so far.
func (p *countProxy) requests() int64 { return p.syncs.Load() + p.queries.Load() }

// Close stops accepting, closes every relayed connection and waits for the relay goroutines.
func (p *countProxy) Close() {
	p.close.Do(func() {
		p.ln.Close()
		p.mu.Lock()
		for c := range p.open {
			c.Close()
		}
		p.open = nil
		p.mu.Unlock()
		p.wg.Wait()
	})
}
