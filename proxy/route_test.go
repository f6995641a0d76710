package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestRoutesToMaster(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	b := startBackend(t, "", greetEcho("B"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)

	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	c.roundTrip(t, "hello")
	if b.accepted() != 0 {
		t.Fatalf("backup backend got %d connections", b.accepted())
	}
	st := s.Stats()
	if st.Total != 1 || st.Active != 1 || st.Refused != 0 {
		t.Fatalf("stats %+v: want Total 1, Active 1, Refused 0", st)
	}
}

func TestWaitsForMaster(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)

	c := dial(t, addrs[0])
	time.Sleep(200 * time.Millisecond) // the connection waits, it is not refused
	if a.accepted() != 0 {
		t.Fatal("backend connected before any master was set")
	}
	start := time.Now()
	s.SetMaster(master("site1", a.addr))
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v after SetMaster to connect; waiters must be woken at once", d)
	}
	c.roundTrip(t, "late but fine")
}

func TestNoMasterTimesOut(t *testing.T) {
	cfg := testConfig(ops("off", "off"))
	cfg.ConnectTimeout = 300 * time.Millisecond
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, cfg, nil)

	// A master without this endpoint counts as no master.
	s.SetMaster(Target{Term: 1, Site: "site1", Endpoints: map[string]string{"other": a.addr}})
	refusedAfter(t, s, addrs[0], 250*time.Millisecond, 3*time.Second, 1)
}

func TestDialRetriesUntilMasterServes(t *testing.T) {
	// A free port nobody listens on yet: the master's server is restarting.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", addr))
	c := dial(t, addrs[0])
	time.Sleep(300 * time.Millisecond)
	startBackend(t, addr, greetEcho("A"))
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
}

func TestMasterChangeCutsOldConnections(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	b := startBackend(t, "", greetEcho("B"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))

	var old []*client
	for range 3 {
		c := dial(t, addrs[0])
		if got := c.line(t); got != "A" {
			t.Fatalf("routed to %q, want A", got)
		}
		old = append(old, c)
	}

	start := time.Now()
	next := master("site2", b.addr)
	next.Term = 2
	s.SetMaster(next)
	for _, c := range old {
		c.closedWithin(t, time.Second)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cut took %v", d)
	}
	eventually(t, 2*time.Second, "backend A's sessions to end", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.active == 0
	})

	c := dial(t, addrs[0])
	if got := c.line(t); got != "B" {
		t.Fatalf("new connection routed to %q, want B", got)
	}
	c.roundTrip(t, "on the new master")
	eventually(t, 2*time.Second, "Cut 3", func() bool { return s.Stats().Cut == 3 }) // counted as each handler ends
}

func TestNoMasterCutsConnections(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	c.line(t)
	s.SetMaster(Target{Term: 1}) // handover: nobody is master
	c.closedWithin(t, time.Second)

	// A new connection waits, then lands on the master that appears.
	c2 := dial(t, addrs[0])
	time.Sleep(100 * time.Millisecond)
	s.SetMaster(master("site1", a.addr))
	if got := c2.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	eventually(t, 2*time.Second, "Cut 1", func() bool { return s.Stats().Cut == 1 }) // counted as its handler ends
}

func TestUnchangedAddressSurvives(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	c.line(t)

	// New term, same master address (e.g. the role was re-confirmed), plus
	// an unrelated endpoint added: the connection stays.
	next := master("site1", a.addr)
	next.Term = 7
	next.Endpoints["admin"] = "127.0.0.1:1"
	s.SetMaster(next)
	s.SetMaster(next) // repeated: no-op
	c.roundTrip(t, "still here")
	if st := s.Stats(); st.Cut != 0 {
		t.Fatalf("Cut = %d, want 0", st.Cut)
	}
}

func TestHalfClose(t *testing.T) {
	// The server reads to EOF, then replies with what it got and closes.
	srv := startBackend(t, "", func(c net.Conn) {
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, "got "+string(got))
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", srv.addr))

	c := dial(t, addrs[0])
	if _, err := io.WriteString(c, "request"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("read reply after half-close: %v", err)
	}
	if string(reply) != "got request" {
		t.Fatalf("reply %q, want %q", reply, "got request")
	}
	eventually(t, 2*time.Second, "connection to end", func() bool { return s.Stats().Active == 0 })
	st := s.Stats()
	if st.BytesUp != int64(len("request")) || st.BytesDown != int64(len("got request")) {
		t.Fatalf("bytes up %d down %d, want %d and %d", st.BytesUp, st.BytesDown, len("request"), len("got request"))
	}
}

func TestServerHalfClose(t *testing.T) {
	// The server sends a banner and half-closes; the client can still send.
	got := make(chan string, 1)
	srv := startBackend(t, "", func(c net.Conn) {
		_, _ = io.WriteString(c, "bye")
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", srv.addr))
	c := dial(t, addrs[0])
	banner, err := io.ReadAll(c.br)
	if err != nil || string(banner) != "bye" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	if _, err := io.WriteString(c, "after FIN"); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	select {
	case g := <-got:
		if g != "after FIN" {
			t.Fatalf("server got %q", g)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("server did not get the client's bytes after its own FIN")
	}
}

// A master endpoint that is the proxy's own listen address (a port given to
// two processes) is never dialled: each accepted connection would dial the
// next until the process ran out of file descriptors. The client waits for
// another master instead.
func TestNoSelfDial(t *testing.T) {
	cfg := testConfig(ops("off", "off"))
	cfg.ConnectTimeout = 3 * time.Second
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", addrs[0]))

	c := dial(t, addrs[0])
	time.Sleep(300 * time.Millisecond)
	if st := s.Stats(); st.Total != 1 {
		t.Fatalf("stats %+v: want only the client's connection, the proxy dialled itself", st)
	}
	a := startBackend(t, "", greetEcho("A"))
	s.SetMaster(master("site2", a.addr))
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}

	// Alone, the client is refused after connect_timeout, having cost nothing else.
	s.SetMaster(master("site1", addrs[0]))
	c.closedWithin(t, time.Second) // cut: it was on site2's server
	refusedAfter(t, s, addrs[0], 2*time.Second, 5*time.Second, 2)
}

func TestOwnAddress(t *testing.T) {
	s := &Server{own: []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.2:7000"),
		netip.MustParseAddrPort("0.0.0.0:7001"),
		netip.MustParseAddrPort("[::]:7002"),
		netip.MustParseAddrPort("127.0.0.1:7004"),
		netip.MustParseAddrPort("[::1]:7005"),
	}}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.2:7000", true},
		{"[::ffff:127.0.0.2]:7000", true},
		{"127.0.0.1:7000", false}, // another address, same port
		{"127.0.0.2:7003", false},
		{"127.0.0.1:7001", true}, // wildcard listener: any address of this host
		{"[::1]:7002", true},
		{"127.0.0.5:7002", true},
		{"192.0.2.1:7001", false}, // TEST-NET: not this host
		{"not an address", false},
		{"0.0.0.0:7004", true}, // reaches 127.0.0.1
		{"[::]:7004", false},   // reaches ::1
		{"[::]:7005", true},
		{"0.0.0.0:7000", false}, // 127.0.0.1, not 127.0.0.2
	} {
		if got := s.ownAddress(tc.addr); got != tc.want {
			t.Errorf("ownAddress(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

// readingBackend starts a backend that reads each connection to its end: what it read comes
// on chunks, and how the stream ended (io.EOF for a FIN) on end.
func readingBackend(t *testing.T) (srv *backend, chunks chan string, end chan error) {
	t.Helper()
	chunks, end = make(chan string, 16), make(chan error, 1)
	srv = startBackend(t, "", func(c net.Conn) {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				chunks <- string(buf[:n])
			}
			if err != nil {
				end <- err
				return
			}
		}
	})
	return srv, chunks, end
}

// A reset on one side reaches the other as a reset, not as a FIN: a server
// that reads a request to EOF must not take an aborted upload for a complete
// one, nor a client a truncated reply for the whole.
func TestResetPropagates(t *testing.T) {
	t.Run("client reset", func(t *testing.T) {
		srv, chunks, end := readingBackend(t)
		s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
		s.SetMaster(master("site1", srv.addr))
		c := dial(t, addrs[0])
		if _, err := io.WriteString(c, "partial upload"); err != nil {
			t.Fatal(err)
		}
		for got := ""; got != "partial upload"; {
			select {
			case b := <-chunks:
				got += b
			case <-time.After(5 * time.Second):
				t.Fatalf("server got %q, want %q", got, "partial upload")
			}
		}
		_ = c.SetLinger(0)
		c.Close() // RST
		select {
		case err := <-end:
			if err == io.EOF {
				t.Fatal("server saw a clean EOF after the client's reset: the aborted upload looks complete")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server connection still open after the client's reset")
		}
	})
	t.Run("server reset", func(t *testing.T) {
		srv := startBackend(t, "", func(c net.Conn) {
			if _, err := io.WriteString(c, "partial reply\n"); err != nil {
				return
			}
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil { // the client has the reply
				return
			}
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close() // RST
		})
		s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
		s.SetMaster(master("site1", srv.addr))
		c := dial(t, addrs[0])
		if got := c.line(t); got != "partial reply" {
			t.Fatalf("got %q", got)
		}
		if _, err := io.WriteString(c, "ok\n"); err != nil {
			t.Fatal(err)
		}
		_, err := c.br.ReadByte()
		switch {
		case err == io.EOF:
			t.Fatal("client saw a clean EOF after the server's reset: the truncated reply looks complete")
		case err == nil:
			t.Fatal("client read more data, want the connection reset")
		case !strings.Contains(err.Error(), "reset"):
			t.Fatalf("client read error %v, want a reset", err)
		}
	})
}

// A server that resets while its reply waits for a client that does not read, then the
// client half-closes: the client's end finds the server's side gone (its shutdown fails) while
// the reply's direction still waits on the client and has not seen the reset. The client must
// get a reset, not the part of the reply that was on its way and a FIN that passes it for the
// whole.
func TestServerResetBeforeClientHalfClose(t *testing.T) {
	blocked := make(chan struct{})
	srv := startBackend(t, "", func(c net.Conn) {
		chunk := make([]byte, 64<<10)
		for {
			_ = c.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := c.Write(chunk); err != nil {
				break // every buffer on the way is full
			}
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST
		close(blocked)
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", srv.addr))
	c := dial(t, addrs[0])
	select {
	case <-blocked:
	case <-time.After(8 * time.Second):
		t.Fatal("the server's writes never filled the buffers")
	}
	time.Sleep(100 * time.Millisecond) // the reset reaches the proxy
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, c.br)
	switch {
	case err == nil:
		t.Fatalf("client read %d bytes and a clean EOF after the server's reset: the truncated reply looks complete", n)
	case !strings.Contains(err.Error(), "reset"):
		t.Fatalf("client read error %v, want a reset", err)
	}
}

// A failover sets "no master", then the new one, in quick succession: a
// connection cut by the first is counted once, though its handler may not
// have ended before the second.
func TestCutCountedOnce(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	b := startBackend(t, "", greetEcho("B"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	const n = 20
	var cs []*client
	for range n {
		c := dial(t, addrs[0])
		c.line(t)
		cs = append(cs, c)
	}
	s.SetMaster(Target{Term: 2})
	s.SetMaster(Target{Term: 3})
	next := master("site2", b.addr)
	next.Term = 4
	s.SetMaster(next)
	for _, c := range cs {
		c.closedWithin(t, 2*time.Second)
	}
	eventually(t, 2*time.Second, "connections to end", func() bool { return s.Stats().Active == 0 })
	if st := s.Stats(); st.Cut != n {
		t.Fatalf("Cut = %d, want %d", st.Cut, n)
	}
}

// A master address of 0.0.0.0 (or ::) reaches this host's loopback: with the
// proxy's listener on that port it would be a dial to itself.
func TestNoSelfDialUnspecified(t *testing.T) {
	cfg := testConfig(ops("off", "off"))
	cfg.ConnectTimeout = 500 * time.Millisecond
	s, addrs := startProxy(t, cfg, nil)
	_, port, _ := net.SplitHostPort(addrs[0])
	s.SetMaster(master("site1", net.JoinHostPort("0.0.0.0", port)))
	refusedAfter(t, s, addrs[0], 400*time.Millisecond, 3*time.Second, 1)
}

// A client that leaves while it waits for a master (its own connect timeout ran out, say) is
// dropped at once: no server connection is made for it when a master appears, and it stops
// holding one of max_conns' slots. A client that sent a request and only half-closed is still
// forwarded, request first, when the master comes; so is whatever a waiting client sends.
func TestClientLeavesWhileWaiting(t *testing.T) {
	deadPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	for _, tc := range []struct {
		name  string
		leave func(c *client)
	}{
		{"close", func(c *client) { c.Close() }},
		{"reset after data", func(c *client) {
			_, _ = io.WriteString(c, "half a request")
			time.Sleep(50 * time.Millisecond) // read by the proxy, not discarded by the RST
			_ = c.SetLinger(0)
			c.Close()
		}},
	} {
		for _, mode := range []string{"no master", "master down"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				cfg := testConfig(ops("off", "v1"))
				cfg.ConnectTimeout = 5 * time.Second
				s, addrs := startProxy(t, cfg, nil)
				addr := deadPort(t)
				if mode == "master down" { // dials fail until its server is back
					s.SetMaster(master("site1", addr))
				}
				c := dial(t, addrs[0])
				time.Sleep(200 * time.Millisecond)
				tc.leave(c)
				eventually(t, 2*time.Second, "the proxy to drop the client that left", func() bool {
					st := s.Stats()
					return st.Active == 0 && st.Refused == 1
				})
				a := startBackend(t, addr, greetEcho("A"))
				s.SetMaster(master("site1", addr))
				time.Sleep(300 * time.Millisecond)
				if n := a.accepted(); n != 0 {
					t.Fatalf("the server got %d connections for a client that had left", n)
				}
			})
		}
	}

	// The request may come with the PROXY header, in the same segment: read with it.
	for _, accept := range []string{"off", "optional", "required"} {
		t.Run("half-closed request/accept_proxy "+accept, func(t *testing.T) {
			srv := startBackend(t, "", func(c net.Conn) {
				got, err := io.ReadAll(c)
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, "got "+string(got))
			})
			s, addrs := startProxy(t, testConfig(ops(accept, "off")), nil)
			c := dial(t, addrs[0])
			msg := "request"
			if accept != "off" {
				msg = "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\n" + msg
			}
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			s.SetMaster(master("site1", srv.addr))
			reply, err := io.ReadAll(c.br)
			if err != nil || string(reply) != "got request" {
				t.Fatalf("reply %q, %v; want %q", reply, err, "got request")
			}
			eventually(t, 2*time.Second, "connection to end", func() bool { return s.Stats().Active == 0 })
			if st := s.Stats(); st.Refused != 0 || st.BytesUp != int64(len("request")) {
				t.Fatalf("stats %+v: want Refused 0, BytesUp %d", st, len("request"))
			}
		})
	}

	// Refused after it sent a request, the client is reset, as when the proxy had left the
	// request unread in its socket: a FIN could pass for the server's whole (empty) answer.
	t.Run("refused after data", func(t *testing.T) {
		cfg := testConfig(ops("off", "off"))
		cfg.ConnectTimeout = 300 * time.Millisecond
		_, addrs := startProxy(t, cfg, nil)
		c := dial(t, addrs[0])
		if _, err := io.WriteString(c, "request"); err != nil {
			t.Fatal(err)
		}
		_, err := c.br.ReadByte()
		if err == nil || !strings.Contains(err.Error(), "reset") {
			t.Fatalf("client read %v, want a reset", err)
		}
	})

	t.Run("close after a PROXY header", func(t *testing.T) {
		cfg := testConfig(ops("required", "off"))
		cfg.ConnectTimeout = 5 * time.Second
		s, addrs := startProxy(t, cfg, nil)
		c := dial(t, addrs[0])
		if _, err := io.WriteString(c, "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\n"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		c.Close()
		eventually(t, 2*time.Second, "the proxy to drop the client that left", func() bool {
			st := s.Stats()
			return st.Active == 0 && st.Refused == 1
		})
	})

	t.Run("data while waiting", func(t *testing.T) {
		// More than the proxy buffers while it waits: the rest stays in the kernel, in order.
		want := make([]byte, 200<<10)
		for i := range want {
			want[i] = byte(i % 251)
		}
		got := make(chan []byte, 1)
		srv := startBackend(t, "", func(c net.Conn) {
			b, _ := io.ReadAll(c)
			got <- b
		})
		s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
		c := dial(t, addrs[0])
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(want)
			if err == nil {
				err = c.CloseWrite()
			}
			wrote <- err
		}()
		time.Sleep(300 * time.Millisecond)
		s.SetMaster(master("site1", srv.addr))
		if err := <-wrote; err != nil {
			t.Fatalf("client write: %v", err)
		}
		select {
		case b := <-got:
			if !bytes.Equal(b, want) {
				t.Fatalf("server got %d bytes, not the %d the client sent in order", len(b), len(want))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server did not get the client's data")
		}
		eventually(t, 2*time.Second, "connection to end", func() bool { return s.Stats().Active == 0 })
		if st := s.Stats(); st.BytesUp != int64(len(want)) {
			t.Fatalf("BytesUp %d, want %d", st.BytesUp, len(want))
		}
	})
}

// Both sites may give the same address for an endpoint: a service address that on_promote
// moves to the master, or a DNS name that follows it. When the master moves, connections made
// to the old master through that address are cut all the same: they still reach the old
// master's server (or a server that lost its address to the new one) until they are.
func TestMasterChangeSameAddress(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	next := master("site2", a.addr)
	next.Term = 2
	s.SetMaster(next)
	c.closedWithin(t, time.Second)
	eventually(t, 2*time.Second, "Cut 1", func() bool { return s.Stats().Cut == 1 }) // counted as its handler ends

	// New connections go to the new master, and stay when its term is renewed.
	c2 := dial(t, addrs[0])
	c2.line(t)
	next.Term = 3
	s.SetMaster(next)
	c2.roundTrip(t, "still here")
}

// A connection the proxy aborts (the master moved, the idle timeout, shutdown) ends with a
// reset on both sides, as one a peer reset does (TestResetPropagates): with a FIN, a server
// that reads a request to EOF would take the aborted upload for a complete one, and a client
// a truncated reply for the whole.
func TestAbortResets(t *testing.T) {
	for _, how := range []string{"master moved", "idle timeout", "shutdown"} {
		t.Run(how, func(t *testing.T) {
			srv, chunks, end := readingBackend(t)
			cfg := testConfig(ops("off", "off"))
			if how == "idle timeout" {
				cfg.IdleTimeout = 500 * time.Millisecond
			}
			log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
			s, err := New(cfg, Options{Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-served; err != nil {
					t.Errorf("Serve: %v", err)
				}
			})
			s.SetMaster(master("site1", srv.addr))

			c := dial(t, s.Addrs()[0].String())
			if _, err := io.WriteString(c, "partial upload"); err != nil {
				t.Fatal(err)
			}
			for got := ""; got != "partial upload"; {
				select {
				case b := <-chunks:
					got += b
				case <-time.After(5 * time.Second):
					t.Fatalf("server got %q, want %q", got, "partial upload")
				}
			}
			switch how {
			case "master moved":
				next := master("site2", "127.0.0.1:1")
				next.Term = 2
				s.SetMaster(next)
			case "shutdown":
				cancel()
			}
			select {
			case err := <-end:
				if err == io.EOF {
					t.Fatal("server saw a clean EOF: the aborted upload looks complete")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("server connection still open")
			}
			_, err = c.br.ReadByte()
			switch {
			case err == io.EOF:
				t.Fatal("client saw a clean EOF: a truncated reply would look complete")
			case err == nil:
				t.Fatal("client read data, want the connection reset")
			case !strings.Contains(err.Error(), "reset"):
				t.Fatalf("client read error %v, want a reset", err)
			}
		})
	}
}

// blockedOnMu waits until a goroutine in the named Server method waits for Server.mu.
func blockedOnMu(t *testing.T, method string) {
	t.Helper()
	eventually(t, 2*time.Second, method+" to wait for Server.mu", func() bool {
		for _, g := range goroutinesOf() {
			if strings.Contains(g, "proxy.(*Server)."+method+"(") && strings.Contains(g, "sync.(*Mutex).") {
				return true
			}
		}
		return false
	})
}

// A connection that ends on its own (each side closed, each FIN passed on) just as the master
// changes, before its handler has taken it out of the set SetMaster walks, is not counted as
// cut: the master change closed nothing. Here the test holds Server.mu so that SetMaster takes
// it first, then the handler of the connection that ended.
func TestEndedConnectionNotCountedCut(t *testing.T) {
	a := startBackend(t, "", func(c net.Conn) { _, _ = io.Copy(c, c) })
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	c.roundTrip(t, "hello")

	s.mu.Lock()
	held := true
	defer func() {
		if held {
			s.mu.Unlock()
		}
	}()
	next := master("site2", a.addr)
	next.Term = 2
	set := make(chan struct{})
	go func() {
		defer close(set)
		s.SetMaster(next)
	}()
	blockedOnMu(t, "SetMaster")
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c.br); err != nil || len(rest) != 0 {
		t.Fatalf("after the client's FIN: read %q, %v; want the server's FIN", rest, err)
	}
	blockedOnMu(t, "handle")
	held = false
	s.mu.Unlock()
	<-set
	eventually(t, 2*time.Second, "the connection to end", func() bool { return s.Stats().Active == 0 })
	if st := s.Stats(); st.Cut != 0 {
		t.Fatalf("Cut = %d, want 0: the connection had ended on its own", st.Cut)
	}
}

// A dial to the master that completes just as the master moves away and straight back
// (A, B, A: a gossip blip, a handover undone) made its server connection while A was master
// the first time; B's turn cut every connection to A but this one, not yet registered, and
// the return to A found it going where the master is again and kept it. It must go like the
// others: the client gets a connection made after the flip. Here the dialer's Control holds
// the dial until the test holds Server.mu, with both SetMaster calls queued on it ahead of
// the connection's own check.
func TestDialAcrossMasterFlipDropped(t *testing.T) {
	var n atomic.Int32
	a := startBackend(t, "", func(c net.Conn) {
		if _, err := fmt.Fprintf(c, "A%d\n", n.Add(1)); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	})
	b := startBackend(t, "", greetEcho("B"))
	inDial, proceed := make(chan struct{}, 1), make(chan struct{})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), func(s *Server) {
		control := s.dialer.Control
		s.dialer.Control = func(network, address string, rc syscall.RawConn) error {
			select {
			case inDial <- struct{}{}:
				<-proceed
			default:
			}
			return control(network, address, rc)
		}
	})
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	<-inDial

	s.mu.Lock()
	held := true
	defer func() {
		if held {
			s.mu.Unlock()
		}
	}()
	onMu := func(method string, want int) {
		eventually(t, 2*time.Second, fmt.Sprintf("%d in %s to wait for Server.mu", want, method), func() bool {
			got := 0
			for _, g := range goroutinesOf() {
				if strings.Contains(g, "proxy.(*Server)."+method+"(") && strings.Contains(g, "sync.(*Mutex).") {
					got++
				}
			}
			return got == want
		})
		time.Sleep(20 * time.Millisecond) // asleep in the mutex's queue, in this order
	}
	toB := master("site2", b.addr)
	toB.Term = 2
	backToA := master("site1", a.addr)
	backToA.Term = 3
	go s.SetMaster(toB)
	onMu("SetMaster", 1)
	go s.SetMaster(backToA)
	onMu("SetMaster", 2)
	close(proceed)
	onMu("connect", 1)
	held = false
	s.mu.Unlock()

	if got := c.line(t); got != "A2" {
		t.Fatalf("routed to %q, want A2: the connection dialled before the flip was kept", got)
	}
}

// TestHandoverDrainKeepsConnections: a master handing over (Target.Draining) keeps the
// connections made to its server, whose requests may be being served, while new ones wait;
// once its drain ends (Draining cleared) they are cut, and the waiting one lands on the next
// master that appears.
func TestHandoverDrainKeepsConnections(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	b := startBackend(t, "", greetEcho("B"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}

	s.SetMaster(Target{Term: 1, Draining: "site1"}) // site1 hands over
	c.roundTrip(t, "served during the drain")
	waiting := dial(t, addrs[0])
	time.Sleep(200 * time.Millisecond)
	if n := a.accepted(); n != 1 {
		t.Fatalf("the draining master's server got %d connections, want only the one made before", n)
	}
	c.roundTrip(t, "still served")

	s.SetMaster(Target{Term: 1}) // the drain ended
	next := master("site2", b.addr)
	next.Term = 2
	s.SetMaster(next)
	if got := waiting.line(t); got != "B" {
		t.Fatalf("the connection made during the drain routed to %q, want B", got)
	}
	c.closedWithin(t, drainEndBound+time.Second) // a reply may be owed: passed on until the bound (finishDrain)
	eventually(t, 2*time.Second, "Cut 1", func() bool { return s.Stats().Cut == 1 })
}

// TestDrainingOnlyKeepsItsOwn: Draining keeps the connections to that site's server only, and
// only while there is no master: those to another site are cut, and a master appearing cuts
// the draining site's too.
func TestDrainingOnlyKeepsItsOwn(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	b := startBackend(t, "", greetEcho("B"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)

	s.SetMaster(master("site2", b.addr))
	toB := dial(t, addrs[0])
	if got := toB.line(t); got != "B" {
		t.Fatalf("routed to %q, want B", got)
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	toB.closedWithin(t, time.Second)

	s.SetMaster(master("site1", a.addr))
	toA := dial(t, addrs[0])
	if got := toA.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	toA.roundTrip(t, "kept")
	// A master while site1 still drains (a Target the node does not give, but the proxy
	// must not keep two sites' connections at once).
	next := master("site2", b.addr)
	next.Term = 2
	next.Draining = "site1"
	s.SetMaster(next)
	toA.closedWithin(t, drainEndBound+time.Second)
}

// TestStopAcceptingKeepsDrain: a stop of the proxy whose site hands over (StopAccepting) takes
// no new connection and keeps those to its site's server, whose requests may be being served,
// through the drain (Target.Draining), then cuts them when the drain ends; those to another
// site's server, and one still waiting for a master, are closed at once.
func TestStopAcceptingKeepsDrain(t *testing.T) {
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	toA := dial(t, addrs[0])
	if got := toA.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}

	s.StopAccepting("site1")
	toA.roundTrip(t, "served after the stop began")
	if c, err := net.DialTimeout("tcp", addrs[0], time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy still accepts connections after StopAccepting")
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"}) // site1 hands over
	toA.roundTrip(t, "served during the drain")
	s.SetMaster(Target{Term: 1}) // the drain ended
	toA.closedWithin(t, drainEndBound+time.Second)
	if n := a.accepted(); n != 1 {
		t.Fatalf("site1's server got %d connections, want 1", n)
	}
}

// TestStopAcceptingClosesOthers: StopAccepting closes at once the connections to another
// site's server and those still waiting for a master's address.
func TestStopAcceptingClosesOthers(t *testing.T) {
	b := startBackend(t, "", greetEcho("B"))
	other := ops("off", "off")
	other.Endpoint = "other" // the master gives no address for it: its connections wait
	s, addrs := startProxy(t, testConfig(ops("off", "off"), other), nil)
	s.SetMaster(master("site2", b.addr))
	toB := dial(t, addrs[0])
	if got := toB.line(t); got != "B" {
		t.Fatalf("routed to %q, want B", got)
	}
	waiting := dial(t, addrs[1])
	eventually(t, 2*time.Second, "the waiting connection tracked", func() bool { return s.Stats().Active == 2 })

	s.StopAccepting("site1")
	toB.closedWithin(t, time.Second)
	waiting.closedWithin(t, time.Second)
	eventually(t, 2*time.Second, "no connection left", func() bool { return s.Stats().Active == 0 })
}
