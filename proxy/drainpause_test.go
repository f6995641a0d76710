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

// TestDrainEndServerPausesMidReply: a drain's end passes on what the server writes after it,
// within drainEndBound (conn.endDrain), for the reply to a request the drain let finish. A
// server that paused longer than drainEndQuiet in the middle of that reply had the rest of it
// thrown away: finishDrain took the pause for the reply's end and reset the connection, and the
// operator got half a reply.
func TestDrainEndServerPausesMidReply(t *testing.T) {
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
	if got := c.line(t); got != "first half" {
		t.Fatalf("the operator read %q, want the first half of the reply", got)
	}
	s.SetMaster(Target{Term: 1}) // the drain ended, in the middle of the reply
	close(ended)
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 2*time.Second))
	rest, err := io.ReadAll(c.br)
	if string(rest) != "second half\n" {
		t.Fatalf("after the first half of the reply the operator got %q (%v), want the second half", rest, err)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the whole reply: %v, want the connection reset", err)
	}
}

// TestDrainEndOperatorMovedOnEndsEarly: a drain's end that passes on the server's bytes until
// drainEndBound where a reply may be owed (finishDrain) ends at the server's first pause once
// the operator sent its next request, which reaches no server: it is past its reply.
func TestDrainEndOperatorMovedOnEndsEarly(t *testing.T) {
	got := make(chan string, 2)
	a := startBackend(t, "", func(c net.Conn) {
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
			if _, err := io.WriteString(c, "done\n"); err != nil {
				return
			}
		}
	})
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if l := c.line(t); l != "A" {
		t.Fatalf("routed to %q, want A", l)
	}
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	if _, err := io.WriteString(c, "GET report\n"); err != nil {
		t.Fatal(err)
	}
	if l := c.line(t); l != "done" {
		t.Fatalf("the operator read %q, want the reply", l)
	}
	s.SetMaster(Target{Term: 1}) // the drain ended
	start := time.Now()
	if _, err := io.WriteString(c, "next\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 2*time.Second))
	rest, err := io.ReadAll(c.br)
	took := time.Since(start)
	if len(rest) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the operator read %q, %v after its next request; want a reset", rest, err)
	}
	if took >= drainEndBound/2 {
		t.Errorf("an operator past its reply was reset %v after the drain's end, want about drainEndQuiet %v", took, drainEndQuiet)
	}
	if l := <-got; l != "GET report\n" {
		t.Fatalf("the server got %q", l)
	}
	select {
	case l := <-got:
		t.Errorf("the old master's server got %q, sent after its drain ended", l)
	default:
	}
}

// TestDrainEndIdleEndsEarly: a connection idle at its drain's end, no request of its
// operator's awaiting a reply (idleAtDrainEnd), is reset after drainEndQuiet, not drainEndBound.
func TestDrainEndIdleEndsEarly(t *testing.T) {
	if !idleSupported {
		t.Skip("the kernel's data timestamps are not read here: every drain's end waits for its bound")
	}
	idle := drainEndIdle
	t.Cleanup(func() { drainEndIdle = idle }) // after the proxy's, which ends its connections
	drainEndIdle = 100 * time.Millisecond
	a := startBackend(t, "", greetEcho("A"))
	s, addrs := startProxy(t, testConfig(ops("off", "off")), nil)
	s.SetMaster(master("site1", a.addr))
	c := dial(t, addrs[0])
	if l := c.line(t); l != "A" {
		t.Fatalf("routed to %q, want A", l)
	}
	c.roundTrip(t, "hello")
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	time.Sleep(2 * drainEndIdle) // the connection idles
	s.SetMaster(Target{Term: 1}) // the drain ended
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 2*time.Second))
	rest, err := io.ReadAll(c.br)
	took := time.Since(start)
	if len(rest) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the operator read %q, %v; want a reset", rest, err)
	}
	if took >= drainEndBound/2 {
		t.Errorf("an idle connection was reset %v after the drain's end, want about drainEndQuiet %v", took, drainEndQuiet)
	}
}
