package proxy

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDrainEndBeforeRequestResetsBoth: a request that had not reached the server when its
// connection's drain ended — sent after the end, or still in the proxy's socket then — is
// never forwarded (the server has stopped being master; the drain let finish only what it was
// serving), and both sides learn that the connection failed rather than that it ended: the
// operator gets a reset and no reply, so it retries on a new connection, which goes to the next
// master; the server gets a reset and none of the request, so it cannot take part of one for
// a whole. The operator, past any reply (operatorMovedOn), is reset at the server's first
// pause, not at drainEndBound.
func TestDrainEndBeforeRequestResetsBoth(t *testing.T) {
	type seen struct {
		n   int
		err error
	}
	server := make(chan seen, 1)
	a := startBackend(t, "", func(c net.Conn) {
		if _, err := io.WriteString(c, "A\n"); err != nil {
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, c)
		server <- seen{int(n), err}
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	s.SetMaster(Target{Term: 1}) // the drain ended, nothing asked of the server
	start := time.Now()
	if _, err := io.WriteString(c, "INSERT late\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 2*time.Second))
	got, err := io.ReadAll(c.br)
	took := time.Since(start)
	if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the operator read %q, %v; want a reset and no reply", got, err)
	}
	if took >= drainEndBound/2 {
		t.Errorf("the operator was reset %v after its request, want about drainEndQuiet %v", took, drainEndQuiet)
	}
	select {
	case r := <-server:
		if r.n != 0 || !errors.Is(r.err, syscall.ECONNRESET) {
			t.Fatalf("the server read %d bytes, then %v; want none and a reset", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's connection still open 5s after the operator's reset")
	}
}
