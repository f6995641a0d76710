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

// The end of a handover drain where no reply is owed: the connection is reset at the server's
// first pause (drainEndQuiet), not at drainEndBound (finishDrain, resetAtFirstPause).

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
	s, c := proxiedToSite1(t, a.addr)
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	s.SetMaster(Target{Term: 1}) // the drain ended, nothing asked of the server
	start := time.Now()
	if _, err := io.WriteString(c, "INSERT late\n"); err != nil {
		t.Fatal(err)
	}
	resetAtFirstPause(t, c, start, "the operator, its request sent after the drain's end,")
	select {
	case r := <-server:
		if r.n != 0 || !errors.Is(r.err, syscall.ECONNRESET) {
			t.Fatalf("the server read %d bytes, then %v; want none and a reset", r.n, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server's connection still open 5s after the operator's reset")
	}
}

// TestDrainEndOperatorMovedOnEndsEarly: a drain's end that passes on the server's bytes until
// drainEndBound where a reply may be owed (finishDrain) ends at the server's first pause once
// the operator sent its next request, which reaches no server: it is past its reply.
func TestDrainEndOperatorMovedOnEndsEarly(t *testing.T) {
	got := make(chan string, 2)
	a := lineBackend(t, got, func(c net.Conn, _ string) error {
		_, err := io.WriteString(c, "done\n")
		return err
	})
	s, c := proxiedToSite1(t, a.addr)
	askDuringDrain(t, s, c)
	if l := c.line(t); l != "done" {
		t.Fatalf("the operator read %q, want the reply", l)
	}
	s.SetMaster(Target{Term: 1}) // the drain ended
	start := time.Now()
	if _, err := io.WriteString(c, "next\n"); err != nil {
		t.Fatal(err)
	}
	resetAtFirstPause(t, c, start, "an operator past its reply, its next request sent,")
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
	s, c := proxiedToSite1(t, a.addr)
	c.roundTrip(t, "hello")
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	time.Sleep(2 * drainEndIdle) // the connection idles
	s.SetMaster(Target{Term: 1}) // the drain ended
	resetAtFirstPause(t, c, time.Now(), "an idle connection")
}

// TestDrainEndNoRequestEndsEarly: a connection over which the operator never sent a byte to
// the server (it connected, and waits) is owed no reply at its drain's end, however recently
// it was made: it is reset at the server's first pause (drainEndQuiet), as before the drain's
// end learned to wait for a reply (finishDrain), not at drainEndBound. idleAtDrainEnd, which
// wants drainEndIdle (2 s) of silence, does not see one made less than that before the end.
// A PROXY header the proxy sent the server is no request of the operator's.
func TestDrainEndNoRequestEndsEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		send string
	}{
		{"server speaks first", "off"},
		{"PROXY header, silent server", "v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			connected := make(chan struct{}, 1)
			a := startBackend(t, "", func(c net.Conn) {
				r := bufio.NewReader(c)
				if tc.send == "off" {
					if _, err := io.WriteString(c, "A\n"); err != nil {
						return
					}
				} else if _, err := r.ReadString('\n'); err != nil { // the PROXY header
					return
				}
				connected <- struct{}{}
				_, _ = io.Copy(io.Discard, r)
			})
			s, addrs := startProxy(t, testConfig(ops("off", tc.send)), nil)
			s.SetMaster(master("site1", a.addr))
			c := dial(t, addrs[0])
			select {
			case <-connected:
			case <-time.After(5 * time.Second):
				t.Fatal("the server got no connection in 5s")
			}
			if tc.send == "off" {
				if got := c.line(t); got != "A" {
					t.Fatalf("routed to %q, want A", got)
				}
			}
			s.SetMaster(Target{Term: 1, Draining: "site1"}) // site1 hands over
			s.SetMaster(Target{Term: 1})                    // the drain ended
			resetAtFirstPause(t, c, time.Now(), "a connection that never sent its server a request")
		})
	}
}
