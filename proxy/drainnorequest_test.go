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
			start := time.Now()
			_ = c.SetReadDeadline(start.Add(drainEndBound + 2*time.Second))
			rest, err := io.ReadAll(c.br)
			took := time.Since(start)
			if len(rest) != 0 || !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the operator read %q, %v; want a reset", rest, err)
			}
			if took >= drainEndBound/2 {
				t.Errorf("a connection that never sent its server a request was reset %v after the drain's end, want about drainEndQuiet %v", took, drainEndQuiet)
			}
		})
	}
}
