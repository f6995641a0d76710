package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/pires/go-proxyproto"
	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/procgroup"
)

// Checker checks the local server's health: a TCP connect to every
// endpoint (and, where configured, a request and the reply it must get), or a
// command that exits 0 when the server is healthy.
type Checker struct {
	s   config.Server
	log *slog.Logger
	// secrets: those written in the health command's arguments (config.CommandSecrets), found
	// once: the search takes time that grows faster than a long script does, and a failing
	// check masks its output every round.
	secrets []string
}

// NewChecker returns a checker for s; nil logger means slog.Default().
// Zero interval, timeout and failure count fall back to config's defaults, as if the file
// left those keys out.
func NewChecker(s config.Server, logger *slog.Logger) *Checker {
	if logger == nil {
		logger = slog.Default()
	}
	if s.HealthInterval <= 0 {
		s.HealthInterval = config.DefaultHealthInterval
	}
	if s.HealthTimeout <= 0 {
		s.HealthTimeout = config.DefaultHealthTimeout
	}
	if s.HealthFailures <= 0 {
		s.HealthFailures = config.DefaultHealthFailures
	}
	return &Checker{s: s, log: logger.With("component", "health"), secrets: config.CommandSecrets(s.HealthCommand)}
}

// Run checks every HealthInterval until ctx ends and calls report with the
// first verdict and every change: healthy on the first success, unhealthy
// after HealthFailures consecutive failures. report is called from Run's
// goroutine. Run returns nil when ctx ends, or an error for a check kind it
// does not know.
func (c *Checker) Run(ctx context.Context, report func(healthy bool)) error {
	check := c.checkTCP
	switch c.s.Health {
	case config.HealthTCP, "":
	case config.HealthExec:
		if len(c.s.HealthCommand) == 0 {
			return errors.New("health check exec: no health_command")
		}
		check = c.checkExec
	default:
		return fmt.Errorf("health check %q: want %s or %s", c.s.Health, config.HealthTCP, config.HealthExec)
	}
	var (
		reported, healthy, starved bool
		failures                   int
	)
	t := time.NewTicker(c.s.HealthInterval)
	defer t.Stop()
	for {
		err := check(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case outOfDescriptors(err):
			// This process could not open a socket or start the command: that says nothing of
			// the server, and taking it for a failure would make the site give up its role
			// and cut every connection for its own shortage. The verdict stands.
			if !starved {
				c.log.Warn("health check could not run: out of file descriptors; the last verdict stands", "err", err)
			}
			starved = true
		case err == nil:
			failures, starved = 0, false
			if !reported || !healthy {
				c.log.Info("server healthy")
				reported, healthy = true, true
				report(true)
			}
		default:
			starved = false
			failures++
			c.log.Debug("server health check failed", "failures", failures, "err", err)
			if failures >= c.s.HealthFailures && (!reported || healthy) {
				c.log.Warn("server unhealthy", "failures", failures, "err", err)
				reported, healthy = true, false
				report(false)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// outOfDescriptors tells whether err is this process's, or the system's, lack of file
// descriptors (EMFILE, ENFILE).
func outOfDescriptors(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

func (c *Checker) checkTCP(ctx context.Context) error {
	if len(c.s.Endpoints) == 0 {
		return errors.New("no server endpoints to check")
	}
	// The endpoints are probed side by side, so that one check takes at most HealthTimeout
	// (the README's per-check limit), not one timeout per endpoint; the first failure in
	// the configured order is the one reported.
	errs := make([]error, len(c.s.Endpoints))
	var wg sync.WaitGroup
	for i, e := range c.s.Endpoints {
		wg.Go(func() { errs[i] = c.probe(ctx, e) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("endpoint %s: %w", c.s.Endpoints[i].Name, err)
		}
	}
	return nil
}

// probe connects to e within HealthTimeout and, when e has HealthExpect, writes HealthSend
// (after a LOCAL PROXY header when e has HealthProxy) and reads until the reply holds
// HealthExpect, all within the same HealthTimeout.
func (c *Checker) probe(ctx context.Context, e config.Endpoint) error {
	stop := ctx
	ctx, cancel := context.WithTimeout(ctx, c.s.HealthTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.Address)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A stop ends the exchange at once: the deadline below is HealthTimeout's alone, and
	// tandem's stop waits for the checker.
	defer context.AfterFunc(stop, func() { conn.Close() })()
	if e.HealthExpect == "" {
		return nil
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if e.HealthProxy != "" {
		// The server may take connections from the proxy's listeners only, each starting with
		// a PROXY header: a LOCAL one says this is a check of the server's own.
		h, err := localHeader(e.HealthProxy)
		if err == nil {
			_, err = conn.Write(h)
		}
		if err != nil {
			return fmt.Errorf("PROXY header: %w", err)
		}
	}
	if e.HealthSend != "" {
		if _, err := io.WriteString(conn, e.HealthSend); err != nil {
			return fmt.Errorf("health_send: %w", err)
		}
	}
	// Read until the expected bytes show up; a reply longer than this without them is wrong.
	limit := len(e.HealthExpect) + 4096
	buf := make([]byte, 0, limit)
	for len(buf) < limit {
		n, err := conn.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if bytes.Contains(buf, []byte(e.HealthExpect)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("no %q in the reply %q: %w", e.HealthExpect, clip(buf), err)
		}
	}
	return fmt.Errorf("no %q in the first %d bytes of the reply %q", e.HealthExpect, limit, clip(buf))
}

// localHeader is the PROXY protocol header of a connection the sidecar makes itself, not one
// relayed for a client: v2's command LOCAL, v1's "PROXY UNKNOWN".
func localHeader(version string) ([]byte, error) {
	v := byte(2)
	if version == config.ProxyV1 {
		v = 1
	}
	return (&proxyproto.Header{Version: v, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).Format()
}

// clip shortens a reply for a log line.
func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "…"
	}
	return string(b)
}

func (c *Checker) checkExec(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.s.HealthTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.s.HealthCommand[0], c.s.HealthCommand[1:]...)
	cmd.Env = execEnviron(os.Environ())
	out := procgroup.Output{Max: healthOutputMax}
	// A child that keeps the output open (a daemon the command started) must not hold up the
	// check, past health_timeout either, nor die of the check's end (procgroup.Run); on a
	// timeout the command's whole process group is killed, so a shell's children go too.
	cmd.WaitDelay = healthWaitDelay
	procgroup.KillOnCancel(cmd)
	err := procgroup.Run(cmd, &out, healthWaitDelay)
	if err == nil {
		return nil
	}
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("health command timed out after %s", c.s.HealthTimeout)
	}
	// The secrets written in the command's arguments too: under set -x it writes them out
	// (TestCheckerExecArgvSecret), quoted (TestCheckerExecArgvSecretQuoted).
	msg := strings.TrimSpace(out.Masked(c.secrets...))
	if len(msg) > 200 {
		// Cut at a character's start, not inside one: the error is logged.
		n := 200
		for n > 200-utf8.UTFMax && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	if msg != "" {
		return fmt.Errorf("health command: %w: %s", err, msg)
	}
	return fmt.Errorf("health command: %w", err)
}

// execEnviron is the sidecar's environment as the health command gets it, as a hook does:
// without the gossip key ($TANDEM_GOSSIP_KEY), the sidecar's secret, since a failed check logs
// the command's output (DESIGN §2: secrets never appear in logs).
func execEnviron(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); name != config.GossipKeyEnv {
			out = append(out, kv)
		}
	}
	return out
}

// healthOutputMax bounds what is kept of a health command's output: of a failed check's
// output the first 200 bytes are logged, and a command that prints without end (a `yes`, a
// `cat` of a log) until it fails or times out must not fill the sidecar's memory at every
// check.
const healthOutputMax = 4 << 10

// healthWaitDelay is how long a check waits, once the health command is gone (exited, or
// killed at health_timeout), for a child it left holding its output.
const healthWaitDelay = 100 * time.Millisecond
