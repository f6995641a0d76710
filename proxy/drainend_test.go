package proxy

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDrainEndDeliversWrittenReply: a master's handover drains (Target.Draining) so that the
// requests being served get their replies. A reply the server wrote in full before the drain
// ended — held in the proxy's sockets, on its way to an operator that reads it at its pace —
// reaches the operator whole: the drain's end cut it with a reset, which threw away what the
// proxy had not yet delivered, and the operator got a truncated reply to a request the server
// had answered.
func TestDrainEndDeliversWrittenReply(t *testing.T) {
	d := startReplyBackend(t)
	s, c := proxiedToSite1(t, d.addr)
	d.requestDuringDrain(t, s, c) // site1 hands over
	s.SetMaster(Target{Term: 1})  // the drain ended, the reply written

	d.readReplyEnded(t, c)
}

// TestDrainEndForwardsNothingNew: once the drain that kept a connection ended, no byte the
// operator sends reaches the old master's server, and a server that goes on writing has the
// connection reset within drainEndBound.
func TestDrainEndForwardsNothingNew(t *testing.T) {
	got := make(chan string, 4)
	a := lineBackend(t, got, func(c net.Conn, line string) error {
		if line == "stream\n" {
			for { // a reply without end
				if _, err := c.Write(bytes.Repeat([]byte("s"), 1024)); err != nil {
					return err
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		return nil
	})
	s, c := proxiedToSite1(t, a.addr)
	s.SetMaster(Target{Term: 1, Draining: "site1"})
	if _, err := io.WriteString(c, "stream\n"); err != nil {
		t.Fatal(err)
	}
	if l := <-got; l != "stream\n" {
		t.Fatalf("the server got %q", l)
	}
	s.SetMaster(Target{Term: 1}) // the drain ended
	start := time.Now()
	if _, err := io.WriteString(c, "late\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(drainEndBound + 3*time.Second))
	_, err := io.Copy(io.Discard, c.br)
	took := time.Since(start)
	t.Logf("the connection ended after %v: %v", took.Round(time.Millisecond), err)
	if took > drainEndBound+time.Second {
		t.Errorf("the connection of a server that goes on writing ended %v after its drain, more than drainEndBound %v", took, drainEndBound)
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a reply cut short by the end of the drain ended with %v, want a reset", err)
	}
	select {
	case l := <-got:
		t.Errorf("the old master's server got %q, sent after its drain ended", l)
	case <-time.After(100 * time.Millisecond):
	}
	eventually(t, 2*time.Second, "Cut 1", func() bool { return s.Stats().Cut == 1 })
}

// TestServeEndLetsDrainEndFinish: at SIGTERM the stopping master's own proxy keeps the
// connections to its server through the drain (StopAccepting), and its Serve ends once the node
// is done — which can be a moment after the drain's end. A drain's end passes on what the
// server wrote, within drainEndBound (conn.endDrain); Serve's end reset such a connection at
// once, throwing away the reply the drain was there to let finish.
func TestServeEndLetsDrainEndFinish(t *testing.T) {
	d := startReplyBackend(t)
	p, c := startServedProxy(t, d.addr)
	p.StopAccepting("site1")             // SIGTERM
	d.requestDuringDrain(t, p.Server, c) // site1 hands over
	p.SetMaster(Target{Term: 1})         // the drain ended, the reply written
	p.cancel()                           // the node is done: serve stops the proxy
	cancelled := time.Now()

	d.readReply(t, c)
	p.returnsWithinBound(t, cancelled)
}

// TestServeEndDuringDrainLetsReplyFinish: Serve's context ends once the node is done, which
// is after its release's drain ended — unless the node gave up on it (its release past its
// bound, a drain's end not routed before the stop): the proxy then stops while a handover's
// drain still keeps connections to the server, serving requests. Serve's end reset them at
// once, throwing away the reply the server had written; it ends their drain (conn.endDrain)
// instead, so that what the server wrote reaches the operator, within drainEndBound.
func TestServeEndDuringDrainLetsReplyFinish(t *testing.T) {
	d := startReplyBackend(t)
	p, c := startServedProxy(t, d.addr)
	p.StopAccepting("site1")             // SIGTERM
	d.requestDuringDrain(t, p.Server, c) // site1 hands over
	p.cancel()                           // the node is done, its drain still on
	cancelled := time.Now()

	d.readReplyEnded(t, c)
	p.returnsWithinBound(t, cancelled)
}

// TestDrainEndDuringWatchStop: a connection that waited for a master has its client watched
// (clientWatch) until connect returns, and connect makes it known to SetMaster (c.to) before
// its deferred watch.stop ran. A handover's drain that ends in between — SetMaster then calls
// endDrain, which stops the copy of the operator's bytes with a read deadline on the client
// socket — had that deadline cleared by the stop, so the copy loop started with no deadline
// and sat in its read of an operator that sends nothing: the connection stayed open past the
// drain's end (past drainEndBound), holding the old master's server session.
func TestDrainEndDuringWatchStop(t *testing.T) {
	s, err := New(testConfig(ops("off", "off")), Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	operator, client := tcpPair(t)
	up, server := tcpPair(t)
	c := &conn{client: client, start: time.Now()}

	// connect, from a wait for a master on: the watch runs, the dial succeeds and up is
	// published (c.up, c.to under s.mu).
	_, watch := watchClient(t.Context(), client, nil)
	watch.start()
	time.Sleep(20 * time.Millisecond) // the watch reads the client
	c.up.Store(up)
	// Now, before connect's deferred watch.stop, the drain that kept c ends (SetMaster).
	c.endBy = time.Now().Add(drainEndBound)
	c.endDrain()
	// connect returns: the watch stops, and forward starts the copy.
	if sent := watch.stop(); len(sent) != 0 {
		t.Fatalf("the watch read %q", sent)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.copyBoth(c, up)
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("the copy loop ended: %v", err)
	case <-time.After(drainEndBound + time.Second):
		// Ends the copy loop (the operator's side closes), so that nothing outlives the test.
		operator.Close()
		server.Close()
		<-done
		t.Fatalf("the copy loop of a connection whose drain ended as its client watch stopped still ran %v later, past drainEndBound %v", drainEndBound+time.Second, drainEndBound)
	}
	_ = operator.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := operator.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the operator read %v at the drain's end, want a reset", err)
	}
}

// TestStopAcceptingLetsDrainEndFinish: a SIGTERM that comes a moment after a handover's drain
// ended (just after a switchover) stops the proxy with StopAccepting while a connection the
// drain kept is still passing on the reply its server wrote before the drain's end
// (conn.endDrain). Marked as cut already, that connection was reset at once with the
// connections to other sites, throwing the rest of the reply away; it is left to finish, as
// Serve's end leaves it, and still ends within drainEndBound.
func TestStopAcceptingLetsDrainEndFinish(t *testing.T) {
	d := startReplyBackend(t)
	s, c := proxiedToSite1(t, d.addr)
	d.requestDuringDrain(t, s, c) // site1 hands over
	s.SetMaster(Target{Term: 1})  // the drain ended, the reply written
	s.StopAccepting("site1")      // SIGTERM, a moment later
	start := time.Now()

	d.readReplyEnded(t, c)
	eventually(t, drainEndBound+time.Second, "no connection left", func() bool { return s.Stats().Active == 0 })
	t.Logf("the connection ended %v after StopAccepting", time.Since(start).Round(time.Millisecond))
}
