package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
)

// TestAdminAnyPortPublished: a member whose admin.listen takes any free port (port 0, which
// config takes) published that address as written, "127.0.0.1:0", which no member can reach: a
// switchover asked of the backup is forwarded to the master's published admin address, and
// failed. The address it listens on is published.
func TestAdminAnyPortPublished(t *testing.T) {
	t.Parallel()
	wAddr, sAddr := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	wcfg := &config.Config{Kind: config.KindWitness, Site: "witness", DataDir: t.TempDir(), Admin: config.Admin{Listen: "127.0.0.1:0"},
		Gossip: config.Gossip{Bind: wAddr, Join: []string{sAddr}, Profile: config.ProfileFast, Witness: true, FenceDelay: 2 * time.Second},
		Hooks:  config.Hooks{Timeout: time.Second}}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, wcfg, logger) }()
	defer func() { cancel(); <-done }()

	scfg := &config.Config{Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: t.TempDir(), Admin: config.Admin{Listen: "127.0.0.1:7180"},
		Gossip: config.Gossip{Bind: sAddr, Join: []string{wAddr}, Profile: config.ProfileFast, Failback: config.FailbackAuto, Witness: true, FenceDelay: 2 * time.Second}}
	n, err := gossip.New(scfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	nctx, ncancel := context.WithCancel(t.Context())
	ndone := make(chan error, 1)
	go func() { ndone <- n.Run(nctx) }()
	defer func() { ncancel(); <-ndone }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, m := range n.State().Members {
			if m.Site != "witness" || !m.Alive {
				continue
			}
			if _, port, err := net.SplitHostPort(m.Admin); err != nil || port == "0" {
				t.Fatalf("the witness publishes its admin address as %q, which no member can reach", m.Admin)
			}
			c := &adminClient{base: adminURL(m.Admin), http: newAdminHTTP(time.Second)}
			if err := c.do("GET", "/healthz", discard{}); err != nil {
				t.Fatalf("the witness's published admin address %s: %v", m.Admin, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("site1 never saw the witness: %+v", n.State().Members)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// TestAdminAnyPortMetadataRoom: check-config measured the gossip metadata with the admin address
// as written, "127.0.0.1:0", while tandem run publishes the port it gets (up to five digits):
// endpoints that filled the metadata within those four bytes passed check-config, and run
// refused the same file ("gossip metadata too large").
func TestAdminAnyPortMetadataRoom(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "site1.toml")
	write := func(n int) {
		t.Helper()
		src := fmt.Sprintf("site = \"site1\"\ndata_dir = %q\n[gossip]\nbind = %q\n[admin]\nlisten = \"127.0.0.1:0\"\n[server]\n", dir, freeGossipAddr(t))
		for i := range 6 {
			src += fmt.Sprintf("[[server.endpoint]]\nname = \"e%d_%s\"\naddress = \"127.0.0.1:%d\"\n", i, strings.Repeat("x", n), 1+i)
		}
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The longest endpoint names check-config passes.
	n := 80
	for ; n > 0; n-- {
		write(n)
		var stdout, stderr bytes.Buffer
		if run([]string{"check-config", f}, &stdout, &stderr) == 0 {
			break
		}
	}
	if n == 0 {
		t.Fatal("check-config passed no length")
	}
	cfg, err := config.Load(f, config.KindSite)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	select {
	case err := <-done:
		cancel()
		t.Fatalf("check-config passed the file, tandem run refused it: %v", err)
	case <-time.After(time.Second):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestAdminTokenFileByteOrderMark: an admin.token_file saved with a UTF-8 byte order mark (as
// Windows editors write text) is read without it since 71659bf; a client that reads the same
// file as it is — Prometheus's credentials_file, curl -H "Authorization: Bearer $(cat FILE)" —
// sends the mark, and was let in before, the member's token holding it too.
func TestAdminTokenFileByteOrderMark(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("\ufeffs3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token, err := config.ReadToken(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cfg: &config.Config{Admin: config.Admin{Token: token}}, log: slog.New(slog.DiscardHandler)}
	h := s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, sent := range []string{token, strings.TrimSpace(string(raw))} {
		req := httptest.NewRequest(http.MethodGet, "/status", nil)
		req.Header.Set("Authorization", "Bearer "+sent)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Errorf("token %q, read from the token file %q: %d, want 200", sent, raw, rec.Code)
		}
	}
}
