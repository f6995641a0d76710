package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/proxy"
)

// TestPromoteClientGone: after lifting the cold-start wait, POST /promote watches the node for
// up to 2 s to say what the site still waits for. It went on watching after its client had
// gone (it ignored the request's context), a handler left polling for nobody; it stops when
// the request's context ends.
func TestPromoteClientGone(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: t.TempDir(),
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Join: []string{"127.0.0.1:1"}, Profile: config.ProfileFast, Failback: config.FailbackAuto},
	}
	logger := slog.New(slog.DiscardHandler)
	// Not run: it stays cold with no decision after the force, which the handler waits out.
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, start: time.Now(), proxy: &proxy.Server{}}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel) // the client goes away
	rec := httptest.NewRecorder()
	start := time.Now()
	s.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://127.0.0.1:7180/promote?force=1", nil).WithContext(ctx))
	took := time.Since(start)
	t.Logf("promote -force, its client gone after 100 ms: %d %q in %v", rec.Code, rec.Body.String(), took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("promote went on for %v after its client went away at 100 ms", took.Round(time.Millisecond))
	}
}
