package proxy

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hangingAddr returns a loopback address whose dials hang, like dials to a
// partitioned site: a listener with backlog 0 whose one queue slot is taken,
// so the kernel drops further SYNs.
func hangingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
		c.Close()
		t.Skip("dials to a full accept queue do not hang here")
	}
	return addr
}

func TestSetMasterCancelsDialToOldMaster(t *testing.T) {
	dead := hangingAddr(t)
	b := startBackend(t, "", greetEcho("B"))
	cfg := testConfig(ops("off", "off"))
	cfg.ConnectTimeout = 5 * time.Second
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", dead))
	c := dial(t, addrs[0])
	time.Sleep(300 * time.Millisecond) // the proxy is now stuck dialing dead
	start := time.Now()
	s.SetMaster(master("site2", b.addr))
	if got := c.line(t); got != "B" {
		t.Fatalf("routed to %q, want B", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v after SetMaster; the hanging dial was not cancelled", d)
	}
}

func TestHangingMasterTimesOut(t *testing.T) {
	dead := hangingAddr(t)
	cfg := testConfig(ops("off", "off"))
	cfg.ConnectTimeout = 400 * time.Millisecond
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", dead))
	start := time.Now()
	c := dial(t, addrs[0])
	c.closedWithin(t, 3*time.Second)
	if d := time.Since(start); d < 350*time.Millisecond || d > 1500*time.Millisecond {
		t.Fatalf("closed after %v, want about connect_timeout (400ms)", d)
	}
	eventually(t, time.Second, "refused", func() bool { return s.Stats().Refused == 1 })
}

// A client that stops reading for longer than stallTimeout while a reply comes (busy
// elsewhere; a server waiting on a lock while a client uploads is the same the other way)
// keeps its connection: it answers the window probes. Both sides carried TCP_USER_TIMEOUT,
// which Linux applies to a closed window too: the proxy reset the client a minute (here a
// couple of seconds) after it paused.
func TestPausedReaderKept(t *testing.T) {
	old := stallTimeout
	stallTimeout = 2 * time.Second
	t.Cleanup(func() { stallTimeout = old })
	const size = 16 << 20
	b := startBackend(t, "", func(c net.Conn) {
		if _, err := c.Write(make([]byte, size)); err != nil {
			return
		}
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", b.addr))
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1) })
	}}
	c, err := d.DialContext(t.Context(), "tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(5 * stallTimeout) // the client's window stays closed meanwhile
	n, err := io.Copy(io.Discard, c)
	if err != nil || n != size {
		t.Fatalf("client read %d of %d bytes (%v): the proxy gave up on a live client that paused reading", n, size, err)
	}
	if st := s.Stats(); st.Active != 1 {
		t.Fatalf("stats %+v: want the connection still open", st)
	}
}

// stalledInfo tells a peer gone in the middle of a reply (retransmissions or probes
// unanswered, no ACK for the limit) from a live one: one that answers, one only idle, one
// whose last ACK is recent.
func TestStalledInfo(t *testing.T) {
	const limit = time.Minute
	ms := func(d time.Duration) uint32 { return uint32(d / time.Millisecond) }
	for _, tc := range []struct {
		name string
		info unix.TCPInfo
		want bool
	}{
		{"retransmitting, no ACK for the limit", unix.TCPInfo{Retransmits: 5, Last_ack_recv: ms(limit)}, true},
		{"window probes unanswered", unix.TCPInfo{Probes: 3, Last_ack_recv: ms(2 * limit)}, true},
		{"one window probe unanswered (rate-limited reply)", unix.TCPInfo{Probes: 1, Last_ack_recv: ms(2 * limit)}, false},
		{"window probes answered, closed window", unix.TCPInfo{Last_ack_recv: ms(2 * limit)}, false},
		{"idle", unix.TCPInfo{Last_ack_recv: ms(10 * limit)}, false},
		{"retransmitting, ACKed lately", unix.TCPInfo{Retransmits: 1, Last_ack_recv: ms(limit / 2)}, false},
	} {
		if got := stalledInfo(&tc.info, limit); got != tc.want {
			t.Errorf("%s: stalled %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A client that leaves while the proxy's dial to a master that does not answer (a partitioned
// site) hangs is dropped then: when the role moves on, the new master's server is not dialled
// for it.
func TestClientLeavesDuringHangingDial(t *testing.T) {
	dead := hangingAddr(t)
	b := startBackend(t, "", greetEcho("B"))
	cfg := testConfig(ops("off", "off"))
	cfg.ConnectTimeout = 5 * time.Second
	s, addrs := startProxy(t, cfg, nil)
	s.SetMaster(master("site1", dead))
	c := dial(t, addrs[0])
	time.Sleep(300 * time.Millisecond) // the proxy is now stuck dialing dead
	c.Close()
	eventually(t, 2*time.Second, "the proxy to drop the client that left", func() bool {
		st := s.Stats()
		return st.Active == 0 && st.Refused == 1
	})
	next := master("site2", b.addr)
	next.Term = 2
	s.SetMaster(next)
	time.Sleep(300 * time.Millisecond)
	if n := b.accepted(); n != 0 {
		t.Fatalf("the new master's server got %d connections for a client that had left", n)
	}
}

// A client that connects and leaves before sending anything (a load balancer's TCP health
// check) is not dialled for when its close or reset has arrived by the time the proxy would
// dial: here it waits in the accept queue behind max_conns while it leaves.
func TestLeftClientNotDialled(t *testing.T) {
	const hdr = "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\n"
	for _, tc := range []struct {
		name, accept, first string
		reset               bool
	}{
		{"close", "off", "", false},
		{"reset", "off", "", true},
		{"close after a PROXY header", "required", hdr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startBackend(t, "", greetEcho("A"))
			cfg := testConfig(ops(tc.accept, "off"))
			cfg.MaxConns = 1
			s, addrs := startProxy(t, cfg, nil)
			s.SetMaster(master("site1", a.addr))
			busy := dial(t, addrs[0]) // holds the one slot
			if _, err := io.WriteString(busy, tc.first); err != nil {
				t.Fatal(err)
			}
			busy.line(t)

			probe := dial(t, addrs[0])
			if _, err := io.WriteString(probe, tc.first); err != nil {
				t.Fatal(err)
			}
			if tc.reset {
				_ = probe.SetLinger(0)
			}
			probe.Close()
			time.Sleep(100 * time.Millisecond) // the FIN or RST reaches the queued socket
			busy.Close()
			eventually(t, 2*time.Second, "both connections to end", func() bool {
				st := s.Stats()
				return st.Total == 2 && st.Active == 0
			})
			if n := a.accepted(); n != 1 {
				t.Fatalf("the server got %d connections, want 1: none for the client that had left", n)
			}
			if st := s.Stats(); st.Refused != 1 {
				t.Fatalf("Refused = %d, want 1", st.Refused)
			}
		})
	}
}
