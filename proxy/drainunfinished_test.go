package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// TestServeEndDuringDrainLetsReplyFinish: Serve's context ends once the node is done, which
// is after its release's drain ended — unless the node gave up on it (its release past its
// bound, a drain's end not routed before the stop): the proxy then stops while a handover's
// drain still keeps connections to the server, serving requests. Serve's end reset them at
// once, throwing away the reply the server had written; it ends their drain (conn.endDrain)
// instead, so that what the server wrote reaches the operator, within drainEndBound.
func TestServeEndDuringDrainLetsReplyFinish(t *testing.T) {
	d := startReplyBackend(t)
	s, err := New(testConfig(ops("off", "off")), Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	defer func() { cancel(); <-served }()

	s.SetMaster(master("site1", d.addr))
	c := dial(t, s.Addrs()[0].String())
	if got := c.line(t); got != "A" {
		t.Fatalf("routed to %q, want A", got)
	}
	s.StopAccepting("site1")      // SIGTERM
	d.requestDuringDrain(t, s, c) // site1 hands over
	cancel()                      // the node is done, its drain still on
	start := time.Now()

	err = d.readReply(t, c)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the whole reply: %v, want the connection ended", err)
	}
	select {
	case <-served:
		served <- nil
	case <-time.After(drainEndBound + time.Second):
		t.Fatalf("Serve did not return within drainEndBound of its context's end")
	}
	t.Logf("Serve returned %v after its context ended", time.Since(start).Round(time.Millisecond))
}
