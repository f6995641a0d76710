package proxy

import (
	"fmt"
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
