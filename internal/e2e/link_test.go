package e2e

import (
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// link is a TCP relay that stands for the network between a site and something at the other
// site (its database). cut makes it behave as a partition: what is sent is read and dropped,
// nothing comes back, new connections open but stay silent; connections that carried traffic
// during the cut are closed once it heals (they would have timed out), idle ones go on.
type link struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	healed chan struct{} // closed when a cut ends; a fresh one per cut
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newLink relays a free loopback port to target until the test ends.
func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, healed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(l.healed)
	l.wg.Go(l.accept)
	t.Cleanup(l.close)
	return l
}

func (l *link) addr() string { return l.ln.Addr().String() }

// setCut cuts (true) or heals (false) the link.
func (l *link) setCut(cut bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cut == l.cut {
		return
	}
	l.cut = cut
	if cut {
		l.healed = make(chan struct{})
	} else {
		close(l.healed)
	}
}

// track registers c; false when the link is closed (c is closed then).
func (l *link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *link) untrack(c net.Conn) {
	c.Close()
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// blocked returns the channel closed when the link heals, or nil when it is not cut.
func (l *link) blocked() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return l.healed
	}
	return nil
}

func (l *link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if !l.track(c) {
			return
		}
		l.wg.Go(func() { l.serve(c) })
	}
}

func (l *link) serve(c net.Conn) {
	defer l.untrack(c)
	if healed := l.blocked(); healed != nil {
		<-healed // a connection opened across the cut never gets through
		return
	}
	d, err := net.DialTimeout("tcp", l.target, 2*time.Second)
	if err != nil || !l.track(d) {
		return
	}
	defer l.untrack(d)
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if healed := l.blocked(); healed != nil {
				<-healed // dropped; the connection dies with the cut
				return
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return // EOF too: PostgreSQL's connections never half-close
			}
		}
	}
	go pump(d, c)
	go pump(c, d)
	<-done
	c.Close()
	d.Close()
	<-done
}

func (l *link) close() {
	l.ln.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	if l.cut {
		l.cut = false
		close(l.healed)
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// cutGossip writes the gossip addresses whose links a tandem process must cut into its
// TANDEM_FAULT_CUT file (none: every link works).
func cutGossip(t *testing.T, file string, addrs ...string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(strings.Join(addrs, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// isolate cuts s off from other and from the witness — gossip both ways and the database
// links of both sites — with every process still running (cut = true), or heals it all. The
// cluster must have been started with clusterOpts.links.
func isolate(t *testing.T, s, other *site, cut bool) {
	t.Helper()
	if s.cutFile == "" {
		t.Fatal("isolate needs a cluster started with links")
	}
	if cut {
		cutGossip(t, s.cutFile, other.gossip, s.witnessGossip)
		cutGossip(t, other.cutFile, s.gossip)
		if s.witnessGossip != "" {
			cutGossip(t, s.witnessCut, s.gossip)
		}
	} else {
		for _, f := range []string{s.cutFile, other.cutFile, s.witnessCut} {
			cutGossip(t, f)
		}
	}
	for _, l := range []*link{s.peerLink, other.peerLink} {
		if l != nil {
			l.setCut(cut)
		}
	}
}
