package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// TestAdminConnectionsLimited: the admin API held as many connections as clients opened, each a
// file descriptor of the sidecar's: a client that kept thousands open (a request now and then,
// /healthz needing no token) could use up the descriptors the proxy, the shim and the gossip
// need. At most adminMaxConns are served at once; one more waits to be accepted until one of
// them closes, and is served then.
func TestAdminConnectionsLimited(t *testing.T) {
	t.Parallel()
	admin := freeGossipAddr(t)
	cfg := &config.Config{Kind: config.KindWitness, Site: "witness", DataDir: t.TempDir(), Admin: config.Admin{Listen: admin},
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Witness: true, FenceDelay: 2 * time.Second},
		Hooks:  config.Hooks{Timeout: time.Second}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	dial := func() net.Conn { t.Helper(); return dialAdmin(t, admin) }
	// healthz asks GET /healthz on c and reports whether the answer came within d.
	healthz := func(c net.Conn, br *bufio.Reader, d time.Duration) bool {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(d))
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if !strings.Contains(line, "200") {
			t.Fatalf("GET /healthz: %q", line)
		}
		// The rest of the answer: its header and "ok\n".
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "\r\n" {
				break
			}
		}
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return true
	}
	for range adminMaxConns {
		c := dial()
		held = append(held, c)
		if !healthz(c, bufio.NewReader(c), 10*time.Second) {
			t.Fatalf("connection %d of %d: no answer", len(held), adminMaxConns)
		}
	}
	extra := dial()
	defer extra.Close()
	br := bufio.NewReader(extra)
	if healthz(extra, br, time.Second) {
		t.Fatalf("with %d connections held, one more was served", adminMaxConns)
	}
	held[0].Close()
	_ = extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Errorf("once a held connection closed, the waiting one: %q, %v; want its answer", line, err)
	}
}
