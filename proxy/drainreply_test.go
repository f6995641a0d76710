package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// The end of a handover drain where a reply is owed: what the server writes after it is passed
// on until the server's end, or drainEndBound (finishDrain).

// TestDrainEndServerPausesMidReply: a drain's end passes on what the server writes after it,
// within drainEndBound (conn.endDrain), for the reply to a request the drain let finish. A
// server that paused longer than drainEndQuiet in the middle of that reply had the rest of it
// thrown away: finishDrain took the pause for the reply's end and reset the connection, and the
// operator got half a reply.
func TestDrainEndServerPausesMidReply(t *testing.T) {
	replyPausedAtDrainEnd(t, false)
}

// TestDrainEndHalfClosedOperatorGetsReply: an operator that sends its request and then closes
// its sending side (shutdown(SHUT_WR), as one-shot clients do: the proxy passes the half-close
// on, and the reply comes back the other way) still waits for the reply. A drain's end that
// passes the server's bytes on where a reply is owed (finishDrain) took its FIN for an operator
// past the reply (operatorMovedOn), and a server's pause in the middle of the reply threw the
// rest away.
func TestDrainEndHalfClosedOperatorGetsReply(t *testing.T) {
	replyPausedAtDrainEnd(t, true)
}

// replyPausedAtDrainEnd sends a request during site1's handover drain, which the server
// answers with "first half"; the drain ends once the operator read it, and the server pauses
// for 2×drainEndQuiet before "second half". It fails unless the operator gets the second half
// and the connection then ends (a reset, or closed). halfClose: the operator closes its
// sending side once it asked, and the server its own once it answered.
func replyPausedAtDrainEnd(t *testing.T, halfClose bool) {
	t.Helper()
	ended := make(chan struct{})
	a := requestBackend(t, func(c net.Conn) {
		if _, err := io.WriteString(c, "first half\n"); err != nil {
			return
		}
		<-ended
		time.Sleep(2 * drainEndQuiet) // the pause, after the drain's end
		_, _ = io.WriteString(c, "second half\n")
		if halfClose {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		_, _ = io.Copy(io.Discard, c)
	})
	s, c := proxiedToSite1(t, a.addr)
	askDuringDrain(t, s, c)
	if halfClose {
		if err := c.CloseWrite(); err != nil { // all it asks
			t.Fatal(err)
		}
	}
	if got := c.line(t); got != "first half" {
		t.Fatalf("the operator read %q, want the first half of the reply", got)
	}
	s.SetMaster(Target{Term: 1}) // the drain ended, in the middle of the reply
	close(ended)
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 2*time.Second))
	rest, err := io.ReadAll(c.br)
	who := "the operator"
	if halfClose {
		who = "the half-closed operator"
	}
	if string(rest) != "second half\n" {
		t.Fatalf("after the first half of the reply %s got %q (%v), want the second half", who, rest, err)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the whole reply: %v, want the connection ended", err)
	}
}

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
	a := requestBackend(t, func(c net.Conn) {
		close(asked)
		<-ended
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write(reply)
		c.Close() // the server's end: nothing more to wait for
	})
	s, c := proxiedToSite1(t, a.addr)
	askDuringDrain(t, s, c)
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
