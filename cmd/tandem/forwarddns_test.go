package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/proxy"
)

// TestSwitchoverForwardSlowLookupBounded: a switchover asked of the backup is forwarded to the
// master's admin address; one given as a host name is first looked up (does it name this
// host's loopback?). That lookup was bounded only by the caller's request, not by
// forwardTimeout as the forward itself is: with the name servers unreachable (each tried for
// seconds, again and again) the operator's command ran out its own 10 s and said "context
// deadline exceeded", naming neither the master nor the forward, where it must get the
// backup's answer saying which master it could not reach.
func TestSwitchoverForwardSlowLookupBounded(t *testing.T) {
	// Not parallel: it replaces lookupNetIP for the whole package.
	lookupNetIP = func(ctx context.Context, network, host string) ([]netip.Addr, error) {
		<-ctx.Done() // name servers that never answer
		return nil, ctx.Err()
	}
	defer func() { lookupNetIP = defaultLookupNetIP }()
	addr1, addr2 := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	forwardSite(t, logger, "site1", 1, addr1, addr2, "site1.tandem.test:7180")
	cfg2, n2 := forwardSite(t, logger, "site2", 2, addr2, addr1, "127.0.0.1:7180")
	awaitBackupOf(t, n2, "site1")
	s2 := &sidecar{cfg: cfg2, log: logger, node: n2, start: time.Now(), proxy: &proxy.Server{}}
	srv := httptest.NewServer(s2.adminHandler())
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := run([]string{"switchover", "-admin", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr)
	t.Logf("exit %d after %v: %s", code, time.Since(start).Round(time.Millisecond), stderr.String())
	if code != 1 || !strings.Contains(stderr.String(), "forward") || !strings.Contains(stderr.String(), "site1") {
		t.Errorf("switchover through the backup, the master's admin name not resolving: exit %d, stderr %q; want exit 1 saying the forward to site1 failed", code, stderr.String())
	}
}
