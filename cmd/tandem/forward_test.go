package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/proxy"
)

// TestSwitchoverForwardConflict: a switchover asked of the backup is forwarded to the master,
// which refuses it (409: an unknown site). The backup answered 502 Bad Gateway, as if the
// master could not be reached, where the master had answered and said no: the refusal must
// come back as the master's 409, with its reason.
func TestSwitchoverForwardConflict(t *testing.T) {
	t.Parallel()
	admin1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer admin1.Close()
	addr1, addr2 := freeGossipAddr(t), freeGossipAddr(t)
	logger := slog.New(slog.DiscardHandler)
	site := func(name string, prio int, bind, join, admin string) (*config.Config, *gossip.Node) {
		return forwardSite(t, logger, name, prio, bind, join, admin)
	}
	cfg1, n1 := site("site1", 1, addr1, addr2, admin1.Addr().String())
	cfg2, n2 := site("site2", 2, addr2, addr1, "127.0.0.1:7180")
	s1 := &sidecar{cfg: cfg1, log: logger, node: n1, start: time.Now(), proxy: &proxy.Server{}}
	srv1 := &http.Server{Handler: s1.adminHandler()}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv1.Serve(admin1) }()
	defer func() { srv1.Close(); <-served }()
	awaitBackupOf(t, n2, "site1")
	s2 := &sidecar{cfg: cfg2, log: logger, node: n2, start: time.Now(), proxy: &proxy.Server{}}
	rec := httptest.NewRecorder()
	s2.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/switchover?to=site9", nil))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), `unknown site "site9"`) || !strings.Contains(rec.Body.String(), "site1") {
		t.Errorf("switchover to an unknown site through the backup: %d %q; want the master's 409, naming the master and the unknown site", rec.Code, rec.Body.String())
	}
}
