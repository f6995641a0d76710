package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/proxy"
)

// TestAdminMasterFenced: GET /master is for external load balancers, which route the clients'
// writes to the site that answers 200. A master whose shim its catch-up fenced for the peer
// database's term record (fenceByPeer) takes no writes and refuses new sessions, and stays
// master in the gossip for as long as its term does: /master answered 200 there, and a load
// balancer kept sending every client to a site that refuses them. It answers 503 and says why
// while status shows txshim fenced_by; /backup is unchanged.
func TestAdminMasterFenced(t *testing.T) {
	t.Parallel()
	d, _, _, _ := fencedByPeerSite2(t, `UPDATE tandem.state SET master = 'site1', peer_synced = false`)
	fence := d.status().FencedBy
	if fence == "" {
		t.Fatal("status shows no fenced_by for a fenced shim")
	}

	cfg := &config.Config{
		Kind: config.KindSite, Site: "site2", Priority: 2, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: freeGossipAddr(t), Profile: config.ProfileFast, Failback: config.FailbackAuto},
	}
	logger := slog.New(slog.DiscardHandler)
	node := runNode(t, cfg, logger)
	node.Force() // alone: no cold-start wait
	deadline := time.Now().Add(20 * time.Second)
	for st := node.State(); st.Role != gossip.RoleMaster; st = node.State() {
		if time.Now().After(deadline) {
			t.Fatalf("site2 alone, forced: %s, %q; want master", st.Role, st.Decision)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, db: d, start: time.Now(), proxy: &proxy.Server{}}
	h := s.adminHandler()

	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:7180"+path, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("/master")
	t.Logf("GET /master on the fenced master: %d %q", code, body)
	if code != http.StatusServiceUnavailable {
		t.Errorf("GET /master on a master whose shim is fenced: %d %q, want 503", code, body)
	}
	if !strings.Contains(body, "fenced") || !strings.Contains(body, fence) {
		t.Errorf("GET /master on the fenced master: body %q does not say it is fenced and why (%q)", body, fence)
	}
	if code, body := get("/backup"); code != http.StatusServiceUnavailable || !strings.Contains(body, "master") {
		t.Errorf("GET /backup on the fenced master: %d %q, want 503 naming its role", code, body)
	}
}
