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

// run runs one hook and reports whether it came to its end by itself — it exited, whatever
// its status, or used up its time (hooks.timeout) — rather than being stopped with ctx: the
// role changed again, or tandem stops.
func (h hooks) run(ctx context.Context, name string, argv []string, role gossip.Role, term uint64) (ended bool) {
	if len(argv) == 0 {
		return true
	}
	hctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, argv[0], argv[1:]...)
	cmd.Env = append(hookEnviron(os.Environ()),
		"TANDEM_SITE="+h.site,
		"TANDEM_ROLE="+string(role),
		"TANDEM_TERM="+strconv.FormatUint(term, 10))
	// A child left behind (a daemon the hook starts) may hold the hook's output: the run waits
	// for it no longer than hookWaitDelay once the hook is gone (exited, or its process group
	// killed at its timeout), and leaves it the output to write on (procgroup.Run).
	procgroup.KillOnCancel(cmd)
	cmd.WaitDelay = hookWaitDelay
	raw := procgroup.Output{Max: hookOutputMax}
	err := procgroup.Run(cmd, &raw, hookWaitDelay)
	// The secrets written in the hook's arguments too: a script under set -x writes them out
	// (TestHookArgvSecretNotLogged), quoted, and the output kept may stop inside one
	// (TestHookArgvSecretQuotedOrCut).
	logged := hookLog(&raw, config.CommandSecrets(argv)...)
	if err != nil && ctx.Err() != nil {
		h.log.Warn("hook stopped: the role changed or tandem stops", "hook", name, "cmd", argv[0], "output", logged)
		return false
	}
	if err != nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("killed at its hooks.timeout (%v): %w", h.cfg.Timeout, err)
	}
	if err != nil {
		h.log.Error("hook failed", "hook", name, "cmd", argv[0], "err", fmt.Sprint(err), "output", logged)
		return true
	}
	h.log.Info("hook ran", "hook", name, "cmd", argv[0], "output", logged)
	return true
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

// hookWaitDelay is how long a hook's run waits, once the hook is gone (exited, or killed at its
// timeout), for a child it left holding its output.
const hookWaitDelay = time.Second

// hookOutputMax bounds what is kept of a hook's output for the log: a hook that prints without
// end (a `tail -f` by mistake) for its whole timeout must not fill the sidecar's memory.
const hookOutputMax = 64 << 10

// hookLog is a hook's output as it is logged, the value of $PGPASSWORD and the secrets written
// in its arguments masked (procgroup.Output.Masked), and what was not kept counted.
func hookLog(out *procgroup.Output, secrets ...string) string {
	if out.Dropped == 0 {
		return out.Masked(secrets...)
	}
	return fmt.Sprintf("%s… (%d more bytes not kept)", out.Masked(secrets...), out.Dropped)
}
