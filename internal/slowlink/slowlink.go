// Package slowlink is test harness code: a TCP relay on 127.0.0.1 that delays every chunk it
// carries, each way, by a delay that may change at run time — a WAN link with latency between
// the sites, or a peer whose disk stalls. Chunks keep their order; one read at t is written at
// t+delay (or after the one before it). Bandwidth is not limited.
package slowlink

import (
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Link is a running relay; the test's end closes it and every connection through it.
type Link struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // one way, in nanoseconds
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start starts a relay to target (host:port), with no delay yet.
func Start(t testing.TB, target string) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.serve(c)
		}
	}()
	t.Cleanup(l.close)
	return l
}

// SetDelay sets the one-way delay of what is read from now on.
func (l *Link) SetDelay(d time.Duration) { l.delay.Store(int64(d)) }

// DSN is dsn (a URL) with its host and port the relay's.
func (l *Link) DSN(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = l.ln.Addr().String()
	return u.String()
}

func (l *Link) track(add bool, cs ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if add && l.closed {
		return false
	}
	for _, c := range cs {
		if add {
			l.conns[c] = struct{}{}
		} else {
			delete(l.conns, c)
		}
	}
	return true
}

func (l *Link) serve(c net.Conn) {
	u, err := net.Dial("tcp", l.target)
	if err != nil {
		c.Close()
		return
	}
	if !l.track(true, c, u) {
		c.Close()
		u.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { l.pipe(u, c); done <- struct{}{} }()
	go func() { l.pipe(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	<-done
	l.track(false, c, u)
}

// pipe copies src to dst, each chunk delayed.
func (l *Link) pipe(dst, src net.Conn) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 4096)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(time.Duration(l.delay.Load())), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		time.Sleep(time.Until(ch.at))
		if _, err := dst.Write(ch.data); err != nil {
			src.Close()
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

func (l *Link) close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.ln.Close()
}
