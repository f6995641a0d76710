package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/internal/procgroup"
)

// hooks runs the on_promote / on_demote commands of DESIGN §6.
type hooks struct {
	cfg  config.Hooks
	site string
	log  *slog.Logger
}

func (h hooks) run(ctx context.Context, name string, argv []string, role gossip.Role, term uint64) {
	if len(argv) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(hookEnviron(os.Environ()),
		"TANDEM_SITE="+h.site,
		"TANDEM_ROLE="+string(role),
		"TANDEM_TERM="+strconv.FormatUint(term, 10))
	// A child left behind (a daemon the hook starts) may hold the output open: the timeout
	// kills the hook's process group, and the wait for the output ends soon after.
	procgroup.KillOnCancel(cmd)
	cmd.WaitDelay = time.Second
	raw, err := cmd.CombinedOutput()
	out := hookOutput(raw)
	if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
		// It exited 0; a daemon it started still holds its output.
		err = nil
	}
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		h.log.Warn("hook stopped: the role changed or tandem stops", "hook", name, "cmd", argv[0], "output", out)
		return
	}
	if err != nil {
		h.log.Error("hook failed", "hook", name, "cmd", argv[0], "err", fmt.Sprint(err), "output", out)
		return
	}
	h.log.Info("hook ran", "hook", name, "cmd", argv[0], "output", out)
}

// hookEnviron is the sidecar's environment as a hook gets it: without the gossip key
// ($TANDEM_GOSSIP_KEY), which is the sidecar's secret, not the hook's — a hook is an operator's
// script that may well log its environment (DESIGN §2: secrets never appear in logs).
func hookEnviron(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != config.GossipKeyEnv {
			out = append(out, kv)
		}
	}
	return out
}

// hookOutput is a hook's output as it is logged, with the value of $PGPASSWORD masked: a hook
// keeps it (it may need the database, as the sidecar does), but one that prints its
// environment or runs under set -x must not write it into the sidecar's log (DESIGN §2:
// secrets never appear in logs).
func hookOutput(out []byte) string {
	s := string(out)
	if pw := os.Getenv("PGPASSWORD"); pw != "" {
		s = strings.ReplaceAll(s, pw, "<PGPASSWORD>")
	}
	return s
}
