package txshim

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestHalfClosedClientGetsReplies: a client that sends its requests and then shuts down its
// sending side (shutdown(SHUT_WR), as a script piping into a socket does) gets the replies, as
// from PostgreSQL itself, which answers every message it read before the end. The shim closed
// both connections at the client's end and the replies were lost.
func TestHalfClosedClientGetsReplies(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	run := func(addr string) string {
		r, conn := dialRawTCP(t, addr, c.Database(), 10*time.Second)
		defer conn.Close()
		r.simple("SELECT pg_sleep(0.3), 42")
		r.pipeline("SELECT 1")
		conn.CloseWrite()
		a, err1 := r.until('Z')
		b, err2 := r.until('Z')
		return fmt.Sprintf("%s %v, %s %v", a, err1, b, err2)
	}
	want := run(fmt.Sprintf("127.0.0.1:%d", c.Port()))
	if got := run(s.Addr().String()); got != want {
		t.Fatalf("half-closed client through the shim got %q; from PostgreSQL %q", got, want)
	}
	time.Sleep(200 * time.Millisecond)
	if n := s.Stats().SessionsActive; n != 0 {
		t.Fatalf("%d sessions active after the half-closed client's end, want 0", n)
	}
}

// dialRawTCP starts a raw session as the superuser on database db at addr (the shim's, or
// PostgreSQL's own), over TCP, with the deadline timeout on its connection.
func dialRawTCP(t *testing.T, addr, db string, timeout time.Duration) (*rawSession, *net.TCPConn) {
	t.Helper()
	r, nc := dialRawNet(t, "tcp", addr, db, timeout)
	return r, nc.(*net.TCPConn)
}
