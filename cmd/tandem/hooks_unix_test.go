//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/internal/procgroup"
	"github.com/tandem-ha/tandem/internal/proctest"
)

// TestHookTimeoutWithChild: a hook is bounded by hooks.timeout even when it leaves a child
// behind that holds its output open (a shell that starts a daemon, a reload that forks): the
// release waits for on_demote, so a hook that outlives its timeout holds the handover.
func TestHookTimeoutWithChild(t *testing.T) {
	t.Parallel()
	child := proctest.NewChild(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hooks{cfg: config.Hooks{Timeout: 300 * time.Millisecond}, site: "site1", log: logger}
	// The shell waits for its child; the child keeps the shell's output open.
	argv := []string{"sh", "-c", child.Script("wait")}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(t.Context(), "on_demote", argv, gossip.RoleBackup, 2)
	}()
	t.Cleanup(func() { <-done }) // the hook ends by its timeout
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hook still runs 10 s after its 300 ms timeout")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the hook took %s, its timeout is 300ms", took)
	}
	child.WaitGone(t, 5*time.Second) // the child went with the hook
}

// TestHookLeavesDaemon: a hook that starts a daemon which keeps the hook's output open, and
// exits 0, ran: it is not logged as failed, and it does not wait for the daemon.
func TestHookLeavesDaemon(t *testing.T) {
	t.Parallel()
	child := proctest.NewChild(t)
	h, logged := loggingHooks()
	start := time.Now()
	h.run(t.Context(), "on_promote", []string{"sh", "-c", child.Script("")}, gossip.RoleMaster, 2)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the hook took %s: it waited for the daemon it started", took)
	}
	out := logged()
	if !strings.Contains(out, "hook ran") || strings.Contains(out, "hook failed") {
		t.Fatalf("log of a hook that exited 0:\n%s", out)
	}
}

// TestHookDaemonKeepsWriting: a daemon a hook starts (a server restarted in the background)
// that keeps the hook's output and writes to it after the hook's run was logged goes on. The
// sidecar closed its end of the output pipe a second after the hook exited, and the daemon's
// next write (a log line) killed it with SIGPIPE.
func TestHookDaemonKeepsWriting(t *testing.T) {
	t.Parallel()
	h, logged := loggingHooks()
	mark := filepath.Join(t.TempDir(), "mark")
	start := time.Now()
	h.run(t.Context(), "on_promote", []string{"sh", "-c", "echo starting; (sleep 1.5; echo still logging; touch " + mark + ") &"}, gossip.RoleMaster, 2)
	if took := time.Since(start); took > 1400*time.Millisecond {
		t.Fatalf("the hook took %s: it waited for the daemon it started", took)
	}
	if out := logged(); !strings.Contains(out, "hook ran") || !strings.Contains(out, "starting") {
		t.Fatalf("log of a hook that exited 0, leaving a daemon:\n%s", out)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon the hook started died at its first write after the hook's run (SIGPIPE)")
		}
	}
}

// TestHookLeavesDaemonNearTimeout: a hook that starts a daemon holding its output and exits 0
// less than a second (the wait for its output) before hooks.timeout ran all the same: it was
// logged as "hook failed: killed at its hooks.timeout" — it was neither killed nor failed —
// because the timeout had passed by the end of the wait for its output.
func TestHookLeavesDaemonNearTimeout(t *testing.T) {
	t.Parallel()
	child := proctest.NewChild(t)
	h, logged := loggingHooks()
	h.cfg.Timeout = 2 * time.Second
	ended := h.run(t.Context(), "on_demote", []string{"sh", "-c", child.Script("sleep 1.3; exit 0")}, gossip.RoleBackup, 2)
	out := logged()
	if !ended || !strings.Contains(out, "hook ran") || strings.Contains(out, "hook failed") {
		t.Fatalf("a hook that exited 0 after 1.3 s of its 2 s timeout, leaving a daemon: ended %v, log:\n%s", ended, out)
	}

	// So with a stop (a role change, tandem's stop) during that wait: the hook had come to its
	// end, but was taken for one cut short — an on_demote then runs again at the next start.
	child2 := proctest.NewChild(t)
	h, logged = loggingHooks()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	time.AfterFunc(600*time.Millisecond, cancel)
	ended = h.run(ctx, "on_demote", []string{"sh", "-c", child2.Script("exit 0")}, gossip.RoleBackup, 2)
	out = logged()
	if !ended || !strings.Contains(out, "hook ran") {
		t.Fatalf("a hook that exited 0 at once, leaving a daemon, and tandem stopping 0.6 s later: ended %v, log:\n%s", ended, out)
	}
}

// TestHookTimeoutLogged: a hook killed at hooks.timeout is logged as timed out, naming the key,
// not only as "signal: killed", which reads as if someone else killed it.
func TestHookTimeoutLogged(t *testing.T) {
	t.Parallel()
	h, logged := loggingHooks()
	h.cfg.Timeout = 300 * time.Millisecond
	h.run(t.Context(), "on_demote", []string{"sh", "-c", "sleep 10"}, gossip.RoleBackup, 2)
	out := logged()
	if !strings.Contains(out, "hook failed") || !strings.Contains(out, "hooks.timeout") {
		t.Fatalf("log of a hook that outlived its 300ms hooks.timeout:\n%s", out)
	}
}

// loggingHooks returns hooks (timeout 10 s) whose log is kept, and a function that reads it.
func loggingHooks() (hooks, func() string) {
	var mu sync.Mutex
	var logged strings.Builder
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
	return hooks{cfg: config.Hooks{Timeout: 10 * time.Second}, site: "site1", log: logger}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return logged.String()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestHookEnvironment: a hook gets the sidecar's environment and its role variables, but not
// the gossip key the sidecar may have been given in $TANDEM_GOSSIP_KEY: a hook is the
// operator's script, and one that logs its environment would write the key out.
func TestHookEnvironment(t *testing.T) {
	t.Setenv(config.GossipKeyEnv, "MDEyMzQ1Njc4OWFiY2RlZg==")
	t.Setenv("TANDEM_HOOK_TEST_KEEP", "kept")
	t.Setenv("TANDEM_ROLE", "stale") // the sidecar's own environment must not shadow the hook's
	out := filepath.Join(t.TempDir(), "env")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := hooks{cfg: config.Hooks{Timeout: 10 * time.Second}, site: "site1", log: logger}
	h.run(t.Context(), "on_promote", []string{"sh", "-c", "env > " + out}, gossip.RoleMaster, 7)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string][]string{}
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = append(env[name], value)
	}
	if v, ok := env[config.GossipKeyEnv]; ok {
		t.Errorf("the hook got $%s = %q", config.GossipKeyEnv, v)
	}
	for name, want := range map[string]string{"TANDEM_SITE": "site1", "TANDEM_ROLE": "master", "TANDEM_TERM": "7",
		"TANDEM_HOOK_TEST_KEEP": "kept", "PATH": os.Getenv("PATH")} {
		if got := env[name]; len(got) != 1 || got[0] != want {
			t.Errorf("the hook's $%s = %q, want %q", name, got, want)
		}
	}
}

// TestHookPGPasswordNotLogged: a hook keeps $PGPASSWORD (it may need the database, as the
// sidecar does), but tandem logs a hook's output, and a hook that prints its environment, or
// runs under set -x, would write the password into the sidecar's log (DESIGN §2: secrets never
// appear in logs). The logged output has it masked.
func TestHookPGPasswordNotLogged(t *testing.T) {
	const pw = "pw-s3cret-42"
	t.Setenv("PGPASSWORD", pw)
	h, logged := loggingHooks()
	h.run(t.Context(), "on_promote", []string{"sh", "-c", `echo "PGPASSWORD=$PGPASSWORD"`}, gossip.RoleMaster, 7)
	h.run(t.Context(), "on_demote", []string{"sh", "-c", `echo "$PGPASSWORD" >&2; exit 3`}, gossip.RoleBackup, 7)
	out := logged()
	if strings.Contains(out, pw) {
		t.Errorf("the sidecar's log holds $PGPASSWORD:\n%s", out)
	}
	if !strings.Contains(out, "PGPASSWORD=<PGPASSWORD>") {
		t.Errorf("the hook did not get $PGPASSWORD, or its output was not logged masked:\n%s", out)
	}
}

// TestHookPGPasswordQuoted: bash's set -x writes a password that holds a quote in its
// shell-quoted form, which a mask of the bare value would miss.
func TestHookPGPasswordQuoted(t *testing.T) {
	const pw = "Tr0ub4dor'&3"
	t.Setenv("PGPASSWORD", pw)
	h, logged := loggingHooks()
	h.run(t.Context(), "on_promote", []string{"bash", "-c", `set -x; : "$PGPASSWORD"`}, gossip.RoleMaster, 7)
	out := logged()
	if strings.Contains(out, "Tr0ub4dor") || !strings.Contains(out, "<PGPASSWORD>") {
		t.Fatalf("the sidecar's log of a hook under set -x:\n%s", out)
	}
}

// TestHookPGPasswordANSIQuoted: bash's set -x writes a word that holds a byte it cannot print in
// its locale — any byte of a non-ASCII character in the C locale (a service without LANG), a
// control character in any — in $'...' form, each such byte as an octal escape: a password
// written so was logged, readable, since the mask looked for it as it stands or single-quoted.
func TestHookPGPasswordANSIQuoted(t *testing.T) {
	for _, c := range []struct{ locale, pw string }{
		{"C", "p\u00e4sswQZrt"},          // $'p\303\244sswQZrt'
		{"C.UTF-8", "pa\x01ss\x1bwQZrt"}, // $'pa\001ss\EwQZrt'
		{"C", "pa\x7fss\u00e9QZ"},        // $'pa\177ss\303\251QZ'
		{"C.UTF-8", "p\uf29a\x01QZ"},     // $'p\uf29a\001QZ': a character it prints as it is
		{"C.UTF-8", "p\ufffd\x01QZ"},     // $'p\ufffd\001QZ'
	} {
		t.Setenv("LC_ALL", c.locale)
		t.Setenv("PGPASSWORD", c.pw)
		h, logged := loggingHooks()
		h.run(t.Context(), "on_promote", []string{"bash", "-c", `set -x; : "$PGPASSWORD"; : "x$PGPASSWORD"`}, gossip.RoleMaster, 7)
		out := logged()
		if strings.Contains(out, "QZ") || strings.Count(out, "<PGPASSWORD>") != 2 {
			t.Errorf("LC_ALL=%s, password %q: the sidecar's log of a hook under set -x:\n%s", c.locale, c.pw, out)
		}
	}
}

// TestHookOutputBounded: a hook that prints without end for its whole time is logged with the
// first hookOutputMax bytes of its output and a count of the rest, not held whole in memory;
// a password cut off at the end of what is kept does not show its start.
func TestHookOutputBounded(t *testing.T) {
	const pw = "pw-s3cret-42"
	t.Setenv("PGPASSWORD", pw)
	h, logged := loggingHooks()
	h.run(t.Context(), "on_promote", []string{"sh", "-c", "head -c 10000000 /dev/zero | tr '\\0' x"}, gossip.RoleMaster, 7)
	out := logged()
	if len(out) > hookOutputMax+1024 || !strings.Contains(out, fmt.Sprintf("(%d more bytes not kept)", 10000000-hookOutputMax)) {
		t.Fatalf("a log of %d bytes for a hook that printed 10 MB: %.300s…", len(out), out)
	}

	for k := 1; k < len(pw); k++ {
		c := procgroup.Output{Max: hookOutputMax}
		c.Write([]byte(strings.Repeat("x", hookOutputMax-k) + pw))
		if got := hookLog(&c); strings.Contains(got, pw[:k]+"…") {
			t.Fatalf("cut after %d bytes of the password, the log shows them: …%s", k, got[len(got)-40:])
		}
	}
}

// TestDemoteStoppedNotRecorded: an on_demote that tandem's stop cut short is not recorded as
// run (demoted.json), so that the next start runs it again; one that ends by itself is.
func TestDemoteStoppedNotRecorded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := hookSidecar(t, dir, config.Hooks{OnDemote: []string{"sh", "-c", "[ $TANDEM_TERM = 4 ] && sleep 10; true"}, Timeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	s.runHook(ctx, hookJob{demote: true, role: gossip.RoleBackup, term: 4})
	if term, err := loadTermFile(dir, demotedFile); err != nil || term != 0 {
		t.Fatalf("after an on_demote of term 4 stopped: demoted.json says term %d (%v), want none", term, err)
	}
	s.runHook(t.Context(), hookJob{demote: true, role: gossip.RoleBackup, term: 5})
	if term, err := loadTermFile(dir, demotedFile); err != nil || term != 5 {
		t.Fatalf("after an on_demote of term 5 ran: demoted.json says term %d (%v), want 5", term, err)
	}
}
