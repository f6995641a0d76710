package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"
)

// The set-up the tests of a handover drain's end share (drainend_test.go, drainearly_test.go,
// drainreply_test.go).

// proxiedToSite1 starts a proxy (startProxy, one operators listener, no PROXY header) whose
// master is site1, its server at addr, and connects an operator through it; the server greets
// it with "A".
func proxiedToSite1(t *testing.T, addr string) (*Server, *client) {
	t.Helper()
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	return s, c
}

// askDuringDrain starts site1's handover drain and sends the request "GET report" on c.
func askDuringDrain(t *testing.T, s *Server, c *client) {
	t.Helper()
	s.SetMaster(Target{Term: 1, Draining: "site1"}) // site1 hands over
	if _, err := io.WriteString(c, "GET report\n"); err != nil {
		t.Fatal(err)
	}
}

// servedProxy is a proxy whose Serve the test ends (cancel), as the node does once it is done.
type servedProxy struct {
	*Server
	cancel context.CancelFunc
	served chan error
}

// startServedProxy is proxiedToSite1 for a proxy whose Serve ends at cancel, or at cleanup.
func startServedProxy(t *testing.T, addr string) (*servedProxy, *client) {
	t.Helper()
	s, err := New(testConfig(ops("off", "off")), Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	p := &servedProxy{Server: s, cancel: cancel, served: make(chan error, 1)}
	go func() { p.served <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-p.served })

	s.SetMaster(master("site1", addr))
	c := dial(t, s.Addrs()[0].String())
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	return p, c
}

// returnsWithinBound fails unless Serve returns within drainEndBound (and a second) of
// cancelled, when its context ended.
func (p *servedProxy) returnsWithinBound(t *testing.T, cancelled time.Time) {
	t.Helper()
	select {
	case err := <-p.served:
		p.served <- err // for the cleanup
	case <-time.After(drainEndBound + time.Second):
		t.Fatalf("Serve did not return within drainEndBound of its context's end")
	}
	t.Logf("Serve returned %v after its context ended", time.Since(cancelled).Round(time.Millisecond))
}

// resetAtFirstPause reads c to its end and fails unless the proxy reset it with no reply,
// well before drainEndBound after start (the drain's end): at the server's first pause
// (drainEndQuiet), where finishDrain sees that no reply is owed. who names the connection in
// the failure.
func resetAtFirstPause(t *testing.T, c *client, start time.Time, who string) {
	t.Helper()
	_ = c.SetReadDeadline(start.Add(drainEndBound + 2*time.Second))
	rest, err := io.ReadAll(c.br)
	took := time.Since(start)
	if len(rest) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s read %q, %v; want a reset and no reply", who, rest, err)
	}
	if took >= drainEndBound/2 {
		t.Errorf("%s was reset %v after the drain's end, want about drainEndQuiet %v", who, took, drainEndQuiet)
	}
}

// lineBackend is a server that greets each connection with "A", then reads request lines:
// each goes to got, then answer runs, which may write; an error of answer's ends the
// connection.
func lineBackend(t *testing.T, got chan<- string, answer func(c net.Conn, line string) error) *backend {
	t.Helper()
	return startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			return
		}
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			got <- line
			if err := answer(c, line); err != nil {
				return
			}
		}
	})
}

// requestBackend is a server that greets each connection with "A", reads one request line
// and hands the connection to answer.
func requestBackend(t *testing.T, answer func(c net.Conn)) *backend {
	t.Helper()
	return startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			return
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		answer(c)
	})
}

// replyBackend is a server that greets each connection with "A", then answers one request
// line with reply (1 MiB, far more than the proxy's sockets hold) and waits for the next, as
// a server does; written gets the result of the reply's write.
type replyBackend struct {
	addr    string
	reply   []byte
	written chan error
}

func startReplyBackend(t *testing.T) *replyBackend {
	t.Helper()
	d := &replyBackend{reply: append(bytes.Repeat([]byte("r"), 1<<20), '\n'), written: make(chan error, 1)}
	d.addr = startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			d.written <- err
			return
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			d.written <- err
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Write(d.reply)
		d.written <- err
		_, _ = io.Copy(io.Discard, c)
	}).addr
	return d
}

// requestDuringDrain starts site1's handover drain, sends a request on c and waits until the
// server wrote its whole reply.
func (d *replyBackend) requestDuringDrain(t *testing.T, s *Server, c *client) {
	t.Helper()
	askDuringDrain(t, s, c)
	select {
	case err := <-d.written:
		if err != nil {
			t.Fatalf("the server could not write its reply: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no request in 10s")
	}
}

// readReply reads c, as an operator that reads at its pace, to its end and fails unless it
// got the whole reply; it returns how the connection ended.
func (d *replyBackend) readReply(t *testing.T, c *client) error {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // the operator reads at its pace
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c.br)
	if len(got) != len(d.reply) {
		t.Fatalf("the operator got %d of the %d bytes of the reply the server wrote before the drain ended (%v)", len(got), len(d.reply), err)
	}
	return err
}

// readReplyEnded is readReply that also fails unless the connection then ended (EOF or a
// reset).
func (d *replyBackend) readReplyEnded(t *testing.T, c *client) {
	t.Helper()
	err := d.readReply(t, c)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the whole reply: %v, want the connection ended", err)
	}
}

// tcpPair returns both ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t *testing.T) (dialed, accepted *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close() })
	accepted, err = ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { accepted.Close() })
	return dialed, accepted
}
