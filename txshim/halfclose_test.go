package txshim

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
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
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": pgtest.Superuser, "database": c.Database()}})
		fe.Flush()
		r := &rawSession{t: t, conn: conn, fe: fe}
		if got, err := r.until('Z'); err != nil {
			t.Fatalf("startup: %q %v", got, err)
		}
		r.simple("SELECT pg_sleep(0.3), 42")
		r.pipeline("SELECT 1")
		conn.(*net.TCPConn).CloseWrite()
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
