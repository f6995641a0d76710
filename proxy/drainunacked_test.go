package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDrainEndServerClosedSlowReader: a server that wrote its whole reply and closed its
// connection during a drain ends the passing on at once (finishDrain), and the reset that ends
// the connection must wait until the operator, which reads at its pace, has taken what the
// proxy's sockets still hold. Linux reads that from the socket (SIOCOUTQ); elsewhere it is not
// known, and the reset came at once, throwing the rest away; there the operator has until
// drainEndBound (unackedKnown).
func TestDrainEndServerClosedSlowReader(t *testing.T) {
	reply := append(bytes.Repeat([]byte("r"), 1<<20), '\n')
	ended := make(chan struct{})
	asked := make(chan struct{})
	a := startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			return
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
			return
		}
		close(asked)
		<-ended
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write(reply)
		c.Close() // the server's end: nothing more to wait for
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	if _, err := io.WriteString(c, "GET report\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the server got no request in 10s")
	}
	s.SetMaster(Target{Term: 1}) // the drain ended
	close(ended)
	time.Sleep(300 * time.Millisecond) // the operator reads at its pace
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c.br)
	if len(got) != len(reply) {
		t.Fatalf("the operator got %d of the %d bytes of the reply (%v)", len(got), len(reply), err)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the whole reply: %v, want the connection ended", err)
	}
}
