package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestAdminConnectionsBounded: a client cannot hold a connection to the admin API for ever. A
// keep-alive connection left idle after its request was never closed (no IdleTimeout), and a
// request with a body that never ends got no answer at all: the server read the body, which no
// handler wants, before answering, without a deadline. Each held a file descriptor of the
// sidecar's for as long as the client liked. Now an idle connection is closed after
// adminIdleTimeout, and a request with a body is answered at once and its connection closed
// within the read bound.
func TestAdminConnectionsBounded(t *testing.T) {
	// Not parallel: it shortens adminIdleTimeout.
	defer func(d time.Duration) { adminIdleTimeout = d }(adminIdleTimeout)
	adminIdleTimeout = time.Second
	admin := freeGossipAddr(t)
	cfg := &config.Config{Kind: config.KindWitness, Site: "witness", DataDir: t.TempDir(), Admin: config.Admin{Listen: admin},
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Witness: true, FenceDelay: 2 * time.Second},
		Hooks:  config.Hooks{Timeout: time.Second}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	dial := func() net.Conn { t.Helper(); return dialAdmin(t, admin) }
	// closedWithin reads what is left of the connection and reports whether the server
	// closed it within d.
	closedWithin := func(c net.Conn, br *bufio.Reader, d time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(d))
		_, err := io.Copy(io.Discard, br)
		return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
	}
	const bound = 15 * time.Second // far beyond adminIdleTimeout and adminReadTimeout

	c := dial()
	defer c.Close()
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(bound))
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("GET /healthz: %q, %v", line, err)
	}
	if !closedWithin(c, br, bound) {
		t.Errorf("a keep-alive connection left idle is still open %v after its answer", bound)
	}

	// A body that never ends (10 bytes announced, 1 sent): the answer comes at once, and the
	// connection is closed.
	c2 := dial()
	defer c2.Close()
	br2 := bufio.NewReader(c2)
	if _, err := io.WriteString(c2, "POST /switchover HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nx"); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(bound))
	line, err := br2.ReadString('\n')
	if err != nil {
		t.Fatalf("POST /switchover with a body that never ends: no answer within %v (%v)", bound, err)
	}
	if !strings.Contains(line, "400") { // the arguments go in the query string (queryOnly)
		t.Errorf("POST /switchover with a body: %q, want 400", line)
	}
	if !closedWithin(c2, br2, bound) {
		t.Errorf("the connection of a request whose body never ends is still open %v after its answer", bound)
	}
}

// dialAdmin connects to the admin API at admin, trying again for up to 10 s while the member
// starts.
func dialAdmin(t *testing.T, admin string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", admin, time.Second)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin API at %s: %v", admin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
