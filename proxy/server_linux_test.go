package proxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallBuffers makes the proxy's server sockets' send buffers as small as the kernel allows,
// so that a first write of a few KiB waits for a server that does not read.
func smallBuffers(s *Server) {
	ctl := s.dialer.Control
	s.dialer.Control = func(network, address string, rc syscall.RawConn) error {
		if err := ctl(network, address, rc); err != nil {
			return err
		}
		return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 1) })
	}
}

// smallListener listens on loopback with the smallest receive buffer the kernel allows, which
// the connections it accepts inherit.
func smallListener(t *testing.T) net.Listener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1) })
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// A first write to the server (the outgoing PROXY header and what the client sent while it
// waited) that fails because the server reset its connection ends the client's with a reset
// too, as the copy loop passes a server's reset on: a FIN could pass for the server's whole
// (empty) answer.
func TestFirstWriteFailureResetsClient(t *testing.T) {
	ln := smallListener(t)
	defer ln.Close()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		time.Sleep(300 * time.Millisecond) // the proxy's write waits for room
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST
	}()
	defer func() { <-accepted }()

	s, addrs := startProxy(t, testConfig(ops("off", "v1")), smallBuffers)
	c := dial(t, addrs[0])
	// Read by the proxy while it waits for a master (at most waitBufMax), then written to
	// the server at once with the header: more than the small buffers hold.
	if _, err := c.Write(bytes.Repeat([]byte("x"), 12<<10)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	s.SetMaster(master("site1", ln.Addr().String()))
	_, err := c.br.ReadByte()
	switch {
	case err == io.EOF:
		t.Fatal("client saw a clean EOF after the server's reset: an empty answer looks complete")
	case err == nil:
		t.Fatal("client read data, want the connection reset")
	case !strings.Contains(err.Error(), "reset"):
		t.Fatalf("client read error %v, want a reset", err)
	}
}

// idle_timeout also reaches a connection whose first write (the PROXY header and what the
// client sent while it waited) waits for a server that does not read.
func TestIdleTimeoutFirstWrite(t *testing.T) {
	ln := smallListener(t)
	defer ln.Close()
	held := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			held <- c // never read
		}
		close(held)
	}()
	defer func() {
		if c := <-held; c != nil {
			c.Close()
		}
	}()

	cfg := testConfig(ops("off", "v1"))
	cfg.IdleTimeout = 300 * time.Millisecond
	s, addrs := startProxy(t, cfg, smallBuffers)
	c := dial(t, addrs[0])
	if _, err := c.Write(bytes.Repeat([]byte("x"), 12<<10)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	s.SetMaster(master("site1", ln.Addr().String()))
	c.closedWithin(t, 3*time.Second)
	eventually(t, 2*time.Second, "Idle 1", func() bool { return s.Stats().Idle == 1 })
}

// TestConnsWithinFDLimit: with max_conns far above what RLIMIT_NOFILE can hold, the proxy
// accepts only as many connections as fit with a reserve left, and the process can still open
// sockets (a health check's connect) while more clients wait. Before, accepts and dials
// failed with EMFILE, and so did the health check: the site gave up its role and cut every
// connection. It runs in a child test process whose limit is lowered.
func TestConnsWithinFDLimit(t *testing.T) {
	const limit = 700 // connsWithin: (700 - 512) / 6 = 31 per listener
	if os.Getenv("PROXY_FDLIMIT_CHILD") == "" {
		child := exec.Command(os.Args[0], "-test.run=^TestConnsWithinFDLimit$", "-test.v")
		child.Env = append(os.Environ(), "PROXY_FDLIMIT_CHILD=1")
		out, err := child.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	want := connsWithin(limit, 1)
	if want != 31 {
		t.Fatalf("connsWithin(%d, 1) = %d, want 31", limit, want)
	}
	a := startBackend(t, "", greetEcho("A"))
	cfg := testConfig(ops("off", "off"))
	cfg.MaxConns = 10000
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", a.addr))
	var cs []*client
	for range want {
		c := dial(t, addrs[0])
		if got := c.line(t); got != "A" {
			t.Fatalf("connection %d routed to %q", len(cs), got)
		}
		cs = append(cs, c)
	}
	for range 20 { // these wait in the listen backlog
		dial(t, addrs[0])
	}
	time.Sleep(300 * time.Millisecond)
	if n := a.accepted(); n != want {
		t.Fatalf("server has %d connections, want %d (what the open-file limit holds)", n, want)
	}
	for range 20 { // what a health check, gossip or the admin API opens
		c, err := net.Dial("tcp", a.addr)
		if err != nil {
			t.Fatalf("a socket of the process's own: %v", err)
		}
		c.Close()
	}
	cs[0].Close()
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Total != int64(want+1); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("proxy stats %+v after one left, want Total %d: a waiting client accepted", s.Stats(), want+1)
		}
	}
}
