package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/proxy"
)

// TestRolesRoutedThroughNodeStop: serve stops following the node's roles when the node's stop
// begins (nodeCtx), but the node still changes its State while it stops — a master's release
// at SIGTERM, whose drain's keep of the connections to its server may end early (the majority
// lost, gossip's watchDrainMajority) — and the proxy must still hear of it: followRoles went
// away at once, and the proxy kept routing to a master that had given up its role. Here a
// lone site, master, stops following and then releases for a failed server: the connection
// through its proxy to its server must be cut.
func TestRolesRoutedThroughNodeStop(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "A\n")
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Profile: config.ProfileFast, Failback: config.FailbackAuto},
		Server: config.Server{Endpoints: []config.Endpoint{{Name: "operators", Address: ln.Addr().String()}}},
		Proxy:  config.Proxy{Listeners: []config.Listener{{Endpoint: "operators", Listen: "127.0.0.1:0"}}, ConnectTimeout: time.Second},
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	px, err := proxy.New(cfg.Proxy, proxy.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, proxy: px, hooks: hooks{cfg: cfg.Hooks, site: cfg.Site, log: logger},
		hookJobs: make(chan hookJob, hookQueue)}
	pctx, stopProxy := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- px.Serve(pctx) }()
	defer func() { stopProxy(); <-served }()
	nctx, stopNode := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- node.Run(nctx) }()
	followCtx, stopFollow := context.WithCancel(context.Background())
	followed := make(chan struct{})
	go func() { s.followRoles(followCtx); close(followed) }()
	defer func() { stopNode(); <-ran; stopFollow(); <-followed }()
	node.SetServerHealthy(true)

	var c net.Conn
	var r *bufio.Reader
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err = net.DialTimeout("tcp", px.Addrs()[0].String(), time.Second); err == nil {
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			r = bufio.NewReader(c)
			if l, err := r.ReadString('\n'); err == nil && l == "A\n" {
				break
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("site1 never served through its proxy")
		}
		time.Sleep(50 * time.Millisecond)
	}
	defer c.Close()

	stopFollow() // as serve's stop: nodeCtx ends, the node's release follows
	node.SetServerHealthy(false)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("the connection through site1's proxy to its server outlived site1's release: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
