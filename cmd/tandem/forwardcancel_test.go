package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/proxy"
)

// TestSwitchoverForwardFollowsCaller: a switchover asked of the backup is forwarded to the
// master. The forward was made without the caller's context: an operator who gave up (Ctrl-C,
// or their own timeout) left the backup asking the master for up to forwardTimeout, and the
// master then started the handover nobody waited for any more. The forward must end when the
// caller's request does.
func TestSwitchoverForwardFollowsCaller(t *testing.T) {
	t.Parallel()
	admin1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer admin1.Close()
	addr1, addr2 := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	_, _ = forwardSite(t, logger, "site1", 1, addr1, addr2, admin1.Addr().String())
	cfg2, n2 := forwardSite(t, logger, "site2", 2, addr2, addr1, "127.0.0.1:7180")
	// The master's admin API is slow to answer; it reports whether its caller went away.
	gone := make(chan bool, 1)
	srv1 := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			gone <- true
		case <-time.After(2 * forwardTimeout):
			gone <- false
		}
	})}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv1.Serve(admin1) }()
	defer func() { srv1.Close(); <-served }()
	awaitBackupOf(t, n2, "site1")
	s2 := &sidecar{cfg: cfg2, log: logger, node: n2, start: time.Now(), proxy: &proxy.Server{}}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	start := time.Now()
	s2.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/switchover", nil).WithContext(ctx))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the forwarded switchover answered %s after its caller went away (300 ms): %d %q", took, rec.Code, rec.Body.String())
	}
	select {
	case g := <-gone:
		if !g {
			t.Error("the master's admin API was still asked after the caller went away")
		}
	case <-time.After(3 * forwardTimeout):
		t.Error("the master's admin API was never asked")
	}
}
