package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/proxy"
)

// TestSwitchoverForwardConflict: a switchover asked of the backup is forwarded to the master,
// which refuses it (409: an unknown site). The backup answered 502 Bad Gateway, as if the
// master could not be reached, where the master had answered and said no: the refusal must
// come back as the master's 409, with its reason.
func TestSwitchoverForwardConflict(t *testing.T) {
	t.Parallel()
	s2 := forwardPair(t, (*sidecar).adminHandler)
	rec := httptest.NewRecorder()
	s2.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/switchover?to=site9", nil))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), `unknown site "site9"`) || !strings.Contains(rec.Body.String(), "site1") {
		t.Errorf("switchover to an unknown site through the backup: %d %q; want the master's 409, naming the master and the unknown site", rec.Code, rec.Body.String())
	}
}

// forwardPair starts the two sites of a switchover-forwarding test (forwardSite): site1, the
// master of term 5, with admin1(its sidecar) serving its admin API on a loopback port, and
// site2, with admin address 127.0.0.1:7180. Once site2 is site1's backup, it returns site2's
// sidecar. All of it stops with the test.
func forwardPair(t *testing.T, admin1 func(s1 *sidecar) http.Handler) *sidecar {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr1, addr2 := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	cfg1, n1 := forwardSite(t, logger, "site1", 1, addr1, addr2, ln.Addr().String())
	cfg2, n2 := forwardSite(t, logger, "site2", 2, addr2, addr1, "127.0.0.1:7180")
	s1 := &sidecar{cfg: cfg1, log: logger, node: n1, start: time.Now(), proxy: &proxy.Server{}}
	srv1 := &http.Server{Handler: admin1(s1)}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv1.Serve(ln) }()
	t.Cleanup(func() { srv1.Close(); <-served })
	awaitBackupOf(t, n2, "site1")
	return &sidecar{cfg: cfg2, log: logger, node: n2, start: time.Now(), proxy: &proxy.Server{}}
}
