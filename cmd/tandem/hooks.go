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
	// A child left behind (a daemon the hook starts) may hold the output open: the timeout
	// kills the hook's process group, and the wait for the output ends soon after.
	procgroup.KillOnCancel(cmd)
	cmd.WaitDelay = hookWaitDelay
	var raw cappedOutput
	cmd.Stdout, cmd.Stderr = &raw, &raw
	err := cmd.Run()
	out := raw.logged()
	if errors.Is(err, exec.ErrWaitDelay) {
		// It exited 0 (Wait says so only of a hook that did, before anything stopped it); a
		// daemon it started still holds its output. Its timeout, or a stop, that came during
		// the wait for that output cut nothing short.
		err = nil
	}
	if err != nil && ctx.Err() != nil {
		h.log.Warn("hook stopped: the role changed or tandem stops", "hook", name, "cmd", argv[0], "output", out)
		return false
	}
	if err != nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("killed at its hooks.timeout (%v): %w", h.cfg.Timeout, err)
	}
	if err != nil {
		h.log.Error("hook failed", "hook", name, "cmd", argv[0], "err", fmt.Sprint(err), "output", out)
		return true
	}
	h.log.Info("hook ran", "hook", name, "cmd", argv[0], "output", out)
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

// cappedOutput keeps the first hookOutputMax bytes of a hook's output and counts the rest.
type cappedOutput struct {
	b       []byte
	dropped int64
}

func (c *cappedOutput) Write(p []byte) (int, error) {
	keep := min(len(p), max(hookOutputMax-len(c.b), 0))
	c.b = append(c.b, p[:keep]...)
	c.dropped += int64(len(p) - keep)
	return len(p), nil
}

// logged is the output as it is logged, the value of $PGPASSWORD masked (hookOutput), and
// what was not kept counted.
func (c *cappedOutput) logged() string {
	if c.dropped == 0 {
		return hookOutput(c.b, false)
	}
	return fmt.Sprintf("%s… (%d more bytes not kept)", hookOutput(c.b, true), c.dropped)
}

// hookOutput is a hook's output as it is logged, with the value of $PGPASSWORD masked: a hook
// keeps it (it may need the database, as the sidecar does), but one that prints its
// environment or runs under set -x must not write it into the sidecar's log (DESIGN §2:
// secrets never appear in logs). Masked as it stands and as bash's set -x quotes it (each
// quote in it closed, escaped and opened again). cut: the output was cut short, and its last
// bytes may be the start of the password, which go too.
func hookOutput(out []byte, cut bool) string {
	s := string(out)
	pw := os.Getenv("PGPASSWORD")
	if pw == "" {
		return s
	}
	forms := []string{pw}
	if q := strings.ReplaceAll(pw, "'", `'\''`); q != pw {
		forms = append(forms, q)
	}
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, "<PGPASSWORD>")
	}
	if cut {
		for _, f := range forms {
			for k := min(len(f)-1, len(s)); k > 0; k-- {
				if strings.HasSuffix(s, f[:k]) {
					s = s[:len(s)-k]
					break
				}
			}
		}
	}
	return s
}
