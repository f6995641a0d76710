package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
)

// TestHookPromoteAfterItsDemote: an on_promote still queued behind a running hook when its term
// is released must not run after that term's on_demote (which the release runs itself): the
// server would be left believing it is master. Here the hook runner is busy (not started)
// while site1 is promoted to term 2 and releases it at once.
func TestHookPromoteAfterItsDemote(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hooks.log")
	hook := func(what string) []string {
		return []string{"sh", "-c", "echo " + what + " $TANDEM_TERM >> " + out}
	}
	cfg := &config.Config{
		Kind: config.KindSite, Site: "site1", Priority: 1, DataDir: dir,
		Gossip: config.Gossip{Bind: "127.0.0.1:0", Profile: config.ProfileFast, Failback: config.FailbackAuto},
		Hooks:  config.Hooks{OnPromote: hook("promote"), OnDemote: hook("demote"), Timeout: 10 * time.Second},
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := gossip.New(cfg, gossip.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cfg: cfg, log: logger, node: node, hooks: hooks{cfg: cfg.Hooks, site: cfg.Site, log: logger},
		hookJobs: make(chan hookJob, hookQueue)}

	// followRoles saw master of term 2; the runner has not got to it yet.
	s.queueHook(hookJob{role: gossip.RoleMaster, term: 2})
	// The node releases term 2: beforeRelease runs on_demote itself.
	s.beforeRelease(t.Context(), 2)
	// The runner catches up (one round of runHooks).
	s.runHook(t.Context(), <-s.hookJobs)

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	t.Logf("hooks ran: %q", lines)
	if last := lines[len(lines)-1]; last != "demote 2" {
		t.Fatalf("the last hook that ran is %q, after term 2 was released: want \"demote 2\"", last)
	}
}
