package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDrainEndHalfClosedOperatorGetsReply: an operator that sends its request and then closes
// its sending side (shutdown(SHUT_WR), as one-shot clients do: the proxy passes the half-close
// on, and the reply comes back the other way) still waits for the reply. A drain's end that
// passes the server's bytes on where a reply is owed (finishDrain) took its FIN for an operator
// past the reply (operatorMovedOn), and a server's pause in the middle of the reply threw the
// rest away.
func TestDrainEndHalfClosedOperatorGetsReply(t *testing.T) {
	ended := make(chan struct{})
	a := startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			return
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		if _, err := io.WriteString(c, "first half\n"); err != nil {
			return
		}
		<-ended
		time.Sleep(2 * drainEndQuiet) // the pause, after the drain's end
		_, _ = io.WriteString(c, "second half\n")
		_ = c.(*net.TCPConn).CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"}) // site1 hands over
	if _, err := io.WriteString(c, "GET report\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil { // all it asks
		t.Fatal(err)
	}
	if got := c.line(t); got != "first half" {
		t.Fatalf("the operator read %q, want the first half of the reply", got)
	}
	s.SetMaster(Target{Term: 1}) // the drain ended, in the middle of the reply
	close(ended)
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 2*time.Second))
	rest, err := io.ReadAll(c.br)
	if string(rest) != "second half\n" {
		t.Fatalf("after the first half of the reply the half-closed operator got %q (%v), want the second half", rest, err)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the whole reply: %v, want the connection ended", err)
	}
}
