package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// backend is a loopback TCP server standing in for the WireServer.
type backend struct {
	t      testing.TB
	ln     net.Listener
	addr   string
	mu     sync.Mutex
	conns  []net.Conn
	active int
	peak   int
	wg     sync.WaitGroup
}

// startBackend listens on 127.0.0.1:0 (or addr) and runs handle for each
// connection; everything stops at cleanup.
func startBackend(t testing.TB, addr string, handle func(net.Conn)) *backend {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("backend listen: %v", err)
	}
	b := &backend{t: t, ln: ln, addr: ln.Addr().String()}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.active++
			b.peak = max(b.peak, b.active)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer func() {
					// Counted as gone before it closes: the close is what lets the proxy end
					// its side and take the next connection (TestMaxConns's peak).
					b.mu.Lock()
					b.active--
					b.mu.Unlock()
					c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(b.stop)
	return b
}

func (b *backend) stop() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *backend) accepted() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// greetEcho says name on a line, then echoes.
func greetEcho(name string) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := io.WriteString(c, name+"\n"); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	}
}

func testConfig(ls ...config.Listener) config.Proxy {
	return config.Proxy{
		Listeners:      ls,
		ConnectTimeout: 2 * time.Second,
		TrustedCIDRs:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
}

func ops(accept, send string) config.Listener {
	return config.Listener{Endpoint: "operators", Listen: "127.0.0.1:0", AcceptProxy: accept, SendProxy: send}
}

func master(site string, addr string) Target {
	return Target{Term: 1, Site: site, Endpoints: map[string]string{"operators": addr}}
}

// startProxy starts a Server and stops it at cleanup, failing the test if
// Serve does not return promptly. tweak runs before Start.
func startProxy(t testing.TB, cfg config.Proxy, tweak func(*Server)) (*Server, []string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, Options{Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if tweak != nil {
		tweak(s)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var addrs []string
	for _, a := range s.Addrs() {
		addrs = append(addrs, a.String())
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Serve did not return 5s after cancel")
		}
	})
	return s, addrs
}

// client is an operator connection through the proxy.
type client struct {
	*net.TCPConn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{TCPConn: c.(*net.TCPConn), br: bufio.NewReader(c)}
}

func (c *client) line(t testing.TB) string {
	t.Helper()
	s, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// roundTrip sends msg and expects it echoed.
func (c *client) roundTrip(t testing.TB, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got := c.line(t); got != msg {
		t.Fatalf("echo: got %q, want %q", got, msg)
	}
}

// closedWithin expects the connection to end (EOF or reset) within d,
// without any more data.
func (c *client) closedWithin(t testing.TB, d time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		t.Fatalf("read %q, want the connection closed", b)
	case isTimeout(err):
		t.Fatalf("connection still open after %v", d)
	case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset"):
		t.Fatalf("unexpected error: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
}

// eventually retries cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refusedAfter dials addr and expects the connection closed after at least wait (it waited
// connect_timeout for a master) and within within, counted as the one refusal among total
// connections, with none left active.
func refusedAfter(t testing.TB, s *Server, addr string, wait, within time.Duration, total int64) {
	t.Helper()
	start := time.Now()
	c := dial(t, addr)
	c.closedWithin(t, within)
	if d := time.Since(start); d < wait {
		t.Fatalf("closed after %v: it should wait connect_timeout for a master", d)
	}
	eventually(t, 2*time.Second, "refused count", func() bool { return s.Stats().Refused == 1 })
	if st := s.Stats(); st.Active != 0 || st.Total != total {
		t.Fatalf("stats %+v: want Active 0, Total %d", st, total)
	}
}
