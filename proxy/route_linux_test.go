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

// Both sides of a proxied connection carry TCP_USER_TIMEOUT, so a peer that vanishes while
// sent data waits for its ACK is noticed as soon as keepalive would notice an idle one.
func TestUserTimeoutOnBothSides(t *testing.T) {
	b := startBackend(t, "", greetEcho("B"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", b.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "B" {
		t.Fatalf("routed to %q, want B", got)
	}
	s.mu.Lock()
	var sides []*net.TCPConn
	for pc := range s.conns {
		sides = append(sides, pc.client, pc.up.Load())
	}
	s.mu.Unlock()
	if len(sides) != 2 || sides[1] == nil {
		t.Fatalf("want one proxied connection with both sides, got %d sides", len(sides))
	}
	want := int(userTimeout / time.Millisecond)
	for i, nc := range sides {
		rc, err := nc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		if err := rc.Control(func(fd uintptr) {
			got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
		}); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if got != want {
			t.Errorf("side %d (0 client, 1 server): TCP_USER_TIMEOUT %d ms, want %d", i, got, want)
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
