package txshim

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowLink is a TCP relay on 127.0.0.1 that delays every chunk it carries, each way, by a
// delay that may change at run time: a WAN link with latency between the sites. Chunks keep
// their order; one read at t is written at t+delay. Bandwidth is not limited.
type slowLink struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // one way, in nanoseconds
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newSlowLink(t *testing.T, target string) *slowLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &slowLink{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
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

func (l *slowLink) setDelay(d time.Duration) { l.delay.Store(int64(d)) }

// dsn is dsn (a URL) with its host and port the relay's.
func (l *slowLink) dsn(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = l.ln.Addr().String()
	return u.String()
}

func (l *slowLink) track(add bool, cs ...net.Conn) bool {
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

func (l *slowLink) serve(c net.Conn) {
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
func (l *slowLink) pipe(dst, src net.Conn) {
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

func (l *slowLink) close() {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.ln.Close()
}

// TestCatchUpSlowLink: catch-up over a link with latency (and bandwidth to spare) ships runs of
// small plain commits in one peer transaction each (applyRun), so that it is bound by what the
// peer makes durable rather than by round trips. A run sent one round trip per transaction
// needed up to runMax+1 round trips within one OpTimeout: over a link whose round trip is more
// than OpTimeout/(runMax+1) — 150 ms with the default 10 s — every run of a backlog ran out of
// time, and its transactions went one at a time, a few round trips each: a master committing
// alone a few transactions a second never caught up.
func TestCatchUpSlowLink(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	link := newSlowLink(t, fmt.Sprintf("127.0.0.1:%d", p.peer.Port()))
	peerDSN := link.dsn(t, p.peer.DSN("app"))
	ctx := capCtx(t, 90*time.Second)
	if err := Install(ctx, "a", p.local.DSN("app"), peerDSN, quietLogger()); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.ldb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.pdb, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	const opTimeout = 3 * time.Second
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: peerDSN, Conns: 1,
		OpTimeout: opTimeout, SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	if err := sh.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	sh.goDown("test: the peer was unreachable", nil) // the shim commits alone meanwhile
	const backlog = 3 * runMax
	for i := 1; i <= backlog; i++ {
		if _, err := p.ldb.ExecContext(ctx, `INSERT INTO kv VALUES ($1, 'solo')`, i); err != nil {
			t.Fatal(err)
		}
	}
	// 40 ms each way: an 80 ms round trip, runMax+1 of them more than OpTimeout.
	const oneWay = 40 * time.Millisecond
	link.setDelay(oneWay)
	start := time.Now()
	// Bandwidth to spare: a few round trips per run, and a few runs.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := sh.CatchUp(cctx, nil)
	took := time.Since(start)
	st := sh.Stats()
	if err != nil || !sh.PeerSynced() {
		t.Fatalf("catch-up of %d small transactions over a %v round trip (OpTimeout %v): %v after %v (synced %v, backlog left %d, shipped %d)",
			backlog, 2*oneWay, opTimeout, err, took.Round(time.Millisecond), sh.PeerSynced(), sh.Backlog(), st.Shipped)
	}
	t.Logf("caught up %d transactions over a %v round trip in %v", backlog, 2*oneWay, took.Round(time.Millisecond))
	link.setDelay(0)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`); n != backlog {
		t.Fatalf("the peer has %d rows, want %d", n, backlog)
	}
	requireSame(t, p)
}
