package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

func TestNewRejectsBadListener(t *testing.T) {
	for _, l := range []config.Listener{
		{Endpoint: "operators", Listen: "127.0.0.1:0", AcceptProxy: "maybe"},
		{Endpoint: "operators", Listen: "127.0.0.1:0", SendProxy: "v3"},
		{Endpoint: "", Listen: "127.0.0.1:0"},
	} {
		if _, err := New(testConfig(l), Options{}); err == nil {
			t.Errorf("New accepted %+v", l)
		}
	}
}

func TestAddrsInListenerOrder(t *testing.T) {
	a := startBackend(t, "", greetEcho("ops"))
	b := startBackend(t, "", greetEcho("adm"))
	cfg := testConfig(ops("off", "off"), config.Listener{Endpoint: "admin", Listen: "127.0.0.1:0"})
	s, addrs := startProxy(t, cfg, nil)
	if len(addrs) != 2 {
		t.Fatalf("Addrs %v", addrs)
	}
	s.SetMaster(Target{Term: 1, Site: "site1", Endpoints: map[string]string{"operators": a.addr, "admin": b.addr}})
	for i, want := range []string{"ops", "adm"} {
		if got := dial(t, addrs[i]).line(t); got != want {
			t.Fatalf("listener %d routed to %q, want %q", i, got, want)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	if !idleSupported {
		t.Skip("idle timeout not supported on this platform")
	}
	a := startBackend(t, "", greetEcho("A"))
	cfg := testConfig(ops("off", "off"))
	cfg.IdleTimeout = 400 * time.Millisecond
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", a.addr))

	idle := dial(t, addrs[0])
	idle.line(t)
	busy := dial(t, addrs[0])
	busy.line(t)

	start := time.Now()
	// busy talks every 100ms for 1.2s, three times the idle timeout.
	for time.Since(start) < 1200*time.Millisecond {
		busy.roundTrip(t, "tick")
		time.Sleep(100 * time.Millisecond)
	}
	idle.closedWithin(t, 10*time.Millisecond) // long since closed
	busy.roundTrip(t, "still open")
	eventually(t, 2*time.Second, "Idle 1", func() bool { return s.Stats().Idle == 1 }) // counted as its handler ends
}

func TestIdleTimeoutOneWayTraffic(t *testing.T) {
	if !idleSupported {
		t.Skip("idle timeout not supported on this platform")
	}
	// The server streams to a client that never writes: that is not idle.
	srv := startBackend(t, "", func(c net.Conn) {
		for {
			if _, err := io.WriteString(c, "x"); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	cfg := testConfig(ops("off", "off"))
	cfg.IdleTimeout = 300 * time.Millisecond
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", srv.addr))
	c := dial(t, addrs[0])
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.br.ReadByte(); err != nil {
			t.Fatalf("one-way stream cut: %v", err)
		}
	}
}

// goroutinesOf lists the stacks that run this package's connection code.
func goroutinesOf() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		// Match the goroutine's own frames, not its "created by" line: one that has returned
		// and is still being torn down (runtime.goexit1) runs no proxy code.
		frames := g
		if i := strings.Index(g, "\ncreated by "); i >= 0 {
			frames = g[:i]
		}
		if strings.Contains(frames, "proxy.proxyCopy") || strings.Contains(frames, "proxy.(*Server)") ||
			strings.Contains(frames, "proxy.(*clientWatch)") {
			out = append(out, g)
		}
	}
	return out
}

// stopServe cancels Serve's context, waits for Serve (whose result done carries) to return
// without error, and checks that none of the package's goroutines is left.
func stopServe(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// A handler has done its work when Serve returns, but it may still be on its way out
	// (past its deferred wg.Done): allow a moment; a leaked one stays.
	left := goroutinesOf()
	for end := time.Now().Add(time.Second); len(left) > 0 && time.Now().Before(end); left = goroutinesOf() {
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("goroutines left after Serve returned:\n%s", strings.Join(left, "\n\n"))
	}
}

func TestServeStopsEverything(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	cfg := testConfig(ops("off", "off"), config.Listener{Endpoint: "waiting", Listen: "127.0.0.1:0"},
		config.Listener{Endpoint: "operators", Listen: "127.0.0.1:0", AcceptProxy: "required"})
	cfg.ConnectTimeout = time.Minute
	cfg.IdleTimeout = time.Minute
	before := runtime.NumGoroutine()

	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := s.Addrs()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	s.SetMaster(master("site1", a.addr))

	var clients []*client
	for range 3 { // copying
		c := dial(t, addrs[0].String())
		c.line(t)
		clients = append(clients, c)
	}
	clients = append(clients, dial(t, addrs[1].String())) // waiting for a master of "waiting"
	clients = append(clients, dial(t, addrs[2].String())) // waiting for a PROXY header
	eventually(t, 2*time.Second, "5 active connections", func() bool { return s.Stats().Active == 5 })
	if len(goroutinesOf()) == 0 {
		t.Fatal("no proxy goroutines while serving: the leak check below would prove nothing")
	}

	stopServe(t, cancel, done)
	for _, c := range clients {
		c.closedWithin(t, time.Second)
	}
	for _, ad := range addrs {
		if c, err := net.DialTimeout("tcp", ad.String(), time.Second); err == nil {
			c.Close()
			t.Fatalf("listener %v still accepts after Serve returned", ad)
		}
	}
	if st := s.Stats(); st.Active != 0 {
		t.Fatalf("Active = %d after shutdown", st.Active)
	}
	// Only the test's own backend goroutines may remain beyond the start.
	eventually(t, 2*time.Second, "goroutine count back to the start", func() bool {
		return runtime.NumGoroutine() <= before+1+a.activeCount()
	})
}

func (b *backend) activeCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active
}

func TestMaxConns(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	cfg := testConfig(ops("off", "off"))
	cfg.MaxConns = 2
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", a.addr))

	c1 := dial(t, addrs[0])
	c1.line(t)
	c2 := dial(t, addrs[0])
	c2.line(t)
	c3 := dial(t, addrs[0]) // the kernel completes the handshake; the proxy does not accept it yet
	time.Sleep(300 * time.Millisecond)
	if n := a.accepted(); n != 2 {
		t.Fatalf("server has %d connections, want 2 (max_conns)", n)
	}
	if st := s.Stats(); st.Total != 2 || st.Active != 2 {
		t.Fatalf("stats %+v: want Total 2, Active 2", st)
	}
	c1.Close()
	if got := c3.line(t); got != "A" {
		t.Fatalf("third connection routed to %q", got)
	}
	a.mu.Lock()
	peak := a.peak
	a.mu.Unlock()
	if peak > 2 {
		t.Fatalf("server saw %d concurrent connections, max_conns is 2", peak)
	}
}

func TestStatsBytes(t *testing.T) {
	a := startBackend(t, "", func(c net.Conn) { _, _ = io.Copy(c, c) })
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	payload := strings.Repeat("0123456789", 100_000) // 1 MB, several splice rounds
	for range 2 {
		c := dial(t, addrs[0])
		go func() {
			_, _ = io.WriteString(c, payload)
			_ = c.CloseWrite()
		}()
		got, err := io.ReadAll(c.br)
		if err != nil || len(got) != len(payload) {
			t.Fatalf("echo: %d bytes, %v; want %d", len(got), err, len(payload))
		}
	}
	eventually(t, 2*time.Second, "connections to end", func() bool { return s.Stats().Active == 0 })
	st := s.Stats()
	want := Stats{Total: 2, BytesUp: int64(2 * len(payload)), BytesDown: int64(2 * len(payload))}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

// A client that sends a request (or more than the proxy reads ahead) and then half-closes or
// closes while it waits for a master is forwarded either way (a closed socket reads like a
// half-closed one). Meanwhile the proxy holds at most waitBufMax of what it sent (the rest
// waits in the kernel, and the watch goroutine ends); forwarded to a server that never reads,
// the connection holds kernel buffers only, and its goroutines end with it.
func TestSentThenClosedServerNeverReads(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		full bool // Close, not CloseWrite
	}{
		{"request, half-close", 4 << 10, false},
		{"more than the read-ahead, close", 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			quit := make(chan struct{})
			srv := startBackend(t, "", func(net.Conn) { <-quit })
			t.Cleanup(func() { close(quit) }) // before the backend stops: cleanups run last first
			cfg := testConfig(ops("off", "v1"))
			cfg.ConnectTimeout = time.Minute
			s, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx) }()

			const n = 8
			data := make([]byte, tc.size)
			before := memInUse()
			sent := make(chan error, n)
			for range n {
				c := dial(t, s.Addrs()[0].String())
				go func() {
					_, err := c.Write(data)
					if tc.full {
						c.Close()
					} else {
						_ = c.CloseWrite()
					}
					sent <- err
				}()
			}
			eventually(t, 5*time.Second, "the watches to end", func() bool {
				return s.Stats().Active == n && !strings.Contains(strings.Join(goroutinesOf(), ""), "clientWatch")
			})
			if grew := int64(memInUse()) - int64(before); grew > n*256<<10 {
				t.Fatalf("the proxy grew by %d bytes for %d waiting clients: more than it may read ahead", grew, n)
			}

			s.SetMaster(master("site1", srv.addr))
			eventually(t, 5*time.Second, "the server to get every connection", func() bool { return srv.activeCount() == n })
			time.Sleep(200 * time.Millisecond) // the proxy writes what it holds and copies
			if st := s.Stats(); st.Active != n || st.Refused != 0 {
				t.Fatalf("stats %+v: want all %d forwarded and open (the server holds them)", st, n)
			}
			if grew := int64(memInUse()) - int64(before); grew > n*256<<10 {
				t.Fatalf("the proxy grew by %d bytes for %d connections to a server that does not read", grew, n)
			}

			stopServe(t, cancel, served)
			for range n {
				select {
				case <-sent:
				case <-time.After(3 * time.Second):
					t.Fatal("a client's write still waits after the proxy stopped")
				}
			}
		})
	}
}
