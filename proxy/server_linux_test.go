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
	const limit = 700 // ConnsWithin: (700 - 512 - 2*17 pipes) / 2 = 77 per listener
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
	want := ConnsWithin(limit, 1)
	if want != 77 {
		t.Fatalf("ConnsWithin(%d, 1) = %d, want 77", limit, want)
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

// pipeFDs counts this process's descriptors that are pipes.
func pipeFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// TestIdleConnHoldsNoPipe: a connection that carried bytes both ways (through splice) and
// sits idle holds its two sockets and no pipe. io.Copy's splice waited for the next bytes
// holding a pipe per direction: 40 idle connections held 160 pipe descriptors.
func TestIdleConnHoldsNoPipe(t *testing.T) {
	// An echo of its own: greetEcho's io.Copy would splice, holding pipes in this process too.
	a := startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			return
		}
		_, _ = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 64<<10))
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	before := pipeFDs(t)
	const n = 40
	msg := strings.Repeat("x", 256<<10) // more than one splice's worth each way
	for range n {
		c := dial(t, addrs[0])
		if got := c.line(t); got != "A" {
			t.Fatalf("routed to %q", got)
		}
		c.roundTrip(t, msg)
	}
	// The copiers are back waiting; a pipe the runtime keeps for later splices may stay.
	time.Sleep(100 * time.Millisecond)
	got := pipeFDs(t) - before
	t.Logf("%d more pipe descriptors with %d idle connections", got, n)
	if got >= n {
		t.Fatalf("%d more pipe descriptors with %d idle connections, want fewer than one per connection", got, n)
	}
	if st := s.Stats(); st.Active != n {
		t.Fatalf("stats %+v, want %d active", st, n)
	}
}

// TestCopyBulkBothWays: megabytes each way through one connection arrive whole and in order,
// the server's reply while the client still sends, then each side's end (half-close) passes
// through after its last bytes — the copy splices what is queued, and an end queued behind
// bytes must not be lost.
func TestCopyBulkBothWays(t *testing.T) {
	t.Run("splice", func(t *testing.T) { testCopyBulk(t, nil) })
	// Every pipe token taken: the bytes go through user space (copyPlain).
	t.Run("no pipe left", func(t *testing.T) {
		testCopyBulk(t, func(s *Server) {
			s.pipes = make(chan struct{}, 1)
			s.pipes <- struct{}{}
		})
	})
}

func testCopyBulk(t *testing.T, tweak func(*Server)) {
	const size = 8 << 20
	up := make([]byte, size)
	down := make([]byte, size)
	for i := range up {
		up[i] = byte(i*7 + i>>13)
		down[i] = byte(i*13 + i>>11)
	}
	got := make(chan []byte, 1)
	a := startBackend(t, "", func(c net.Conn) {
		go func() {
			_, _ = c.Write(down)
			_ = c.(*net.TCPConn).CloseWrite()
		}()
		b, _ := io.ReadAll(c)
		got <- b
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), tweak)
	s.SetMaster(master("site1", a.addr))
	before := pipeFDs(t)
	for round := range 3 {
		c := dial(t, addrs[0])
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		wrote := make(chan error, 1)
		go func() {
			// Uneven writes, so that the proxy finds odd amounts queued.
			var err error
			for off, step := 0, 1; off < size && err == nil; off, step = off+step, step*3%65521+1 {
				_, err = c.Write(up[off:min(off+step, size)])
			}
			if err == nil {
				err = c.CloseWrite()
			}
			wrote <- err
		}()
		back, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("round %d: read: %v", round, err)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("round %d: write: %v", round, err)
		}
		if !bytes.Equal(back, down) {
			t.Fatalf("round %d: the client got %d bytes, not the server's %d", round, len(back), len(down))
		}
		select {
		case b := <-got:
			if !bytes.Equal(b, up) {
				t.Fatalf("round %d: the server got %d bytes, not the client's %d", round, len(b), len(up))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: the server did not see the client's end", round)
		}
		c.Close()
	}
	if tweak != nil {
		if got := pipeFDs(t) - before; got > 0 {
			t.Errorf("%d more pipe descriptors with no pipe token left, want none", got)
		}
	}
}

// TestCopyUrgentData: a client's TCP urgent byte (MSG_OOB) is not forwarded, but every byte
// around it is, and so is the client's end. A splice stops at the urgent mark: before the copy
// read the bytes at the mark, everything after it was stuck there, and once the client's end
// had come the copy spun at full CPU and never passed the end on.
func TestCopyUrgentData(t *testing.T) {
	t.Run("splice", func(t *testing.T) { testCopyUrgent(t, nil) })
	t.Run("no pipe left", func(t *testing.T) {
		testCopyUrgent(t, func(s *Server) {
			s.pipes = make(chan struct{}, 1)
			s.pipes <- struct{}{}
		})
	})
}

func testCopyUrgent(t *testing.T, tweak func(*Server)) {
	got := make(chan []byte, 4)
	a := startBackend(t, "", func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			b = append(b, "<no end: "+err.Error()+">"...)
		}
		got <- b
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), tweak)
	s.SetMaster(master("site1", a.addr))
	for _, tc := range []struct {
		name  string
		parts []string // sent in turn; an odd one as urgent data
		want  string
	}{
		{"between bytes", []string{"abc", "!", "def"}, "abcdef"},
		{"first", []string{"", "!", "def"}, "def"},
		{"last", []string{"abc", "!"}, "abc"},
		{"twice", []string{"ab", "!", "cd", "?", "ef"}, "abcdef"},
	} {
		c := dial(t, addrs[0])
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range tc.parts {
			if i%2 == 0 {
				if _, err := io.WriteString(c, p); err != nil {
					t.Fatalf("%s: write: %v", tc.name, err)
				}
				// Each part reaches the proxy before the next: the mark sits between them.
				time.Sleep(20 * time.Millisecond)
				continue
			}
			var serr error
			if err := rc.Write(func(fd uintptr) bool {
				serr = unix.Send(int(fd), []byte(p), unix.MSG_OOB)
				return serr != unix.EAGAIN
			}); err != nil || serr != nil {
				t.Fatalf("%s: urgent byte: %v %v", tc.name, err, serr)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-got:
			if string(b) != tc.want {
				t.Errorf("%s: the server got %q, want %q and the client's end", tc.name, b, tc.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the server's read did not end", tc.name)
		}
		c.Close()
	}
}
