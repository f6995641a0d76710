package proxy

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dropAll makes c's kernel drop every segment c receives: to the proxy, c's end is a peer gone
// silent (its host lost) — nothing answers, neither data nor window probes.
func dropAll(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	fp := unix.SockFprog{Len: 1, Filter: &prog[0]}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, uintptr(unsafe.Pointer(&fp)), unsafe.Sizeof(fp), 0)
		if e != 0 {
			serr = e
		}
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
}

// TestStalledClientClosed: a client gone silent in the middle of a reply — retransmissions
// unanswered, or, its receive window closed, window probes unanswered — is closed by the
// sweeper once it has left sent data unacknowledged for stallTimeout, and the server's side
// with it: keepalive sends no probe while data waits for an ACK, and without this the server's
// session (and whatever it locked) stayed until retransmission gave up, about 15 minutes.
func TestStalledClientClosed(t *testing.T) {
	old := stallTimeout
	stallTimeout = 2 * time.Second
	t.Cleanup(func() { stallTimeout = old })
	for _, tc := range []struct {
		name   string
		window bool // the client's receive window closed before it goes silent
	}{{"in flight", false}, {"window closed", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ended := make(chan error, 1)
			b := startBackend(t, "", func(c net.Conn) {
				var err error
				for err == nil {
					_, err = c.Write(make([]byte, 64<<10))
				}
				ended <- err
			})
			s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
			s.SetMaster(master("site1", b.addr))
			d := net.Dialer{}
			if tc.window {
				d.Control = func(_, _ string, rc syscall.RawConn) error {
					return rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1) })
				}
			}
			nc, err := d.DialContext(t.Context(), "tcp", addrs[0])
			if err != nil {
				t.Fatal(err)
			}
			c := nc.(*net.TCPConn)
			defer c.Close()
			if tc.window {
				time.Sleep(time.Second) // the reply fills the client's small window
			} else if _, err := io.ReadFull(c, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			dropAll(t, c)
			start := time.Now()
			select {
			case err := <-ended:
				t.Logf("the server's write ended %v after the client went silent: %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(10 * stallTimeout):
				t.Fatalf("the proxy kept a connection whose client went silent (%s) for %v (stallTimeout %v)", tc.name, 10*stallTimeout, stallTimeout)
			}
		})
	}
}
