//go:build unix

package main

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-ha/tandem/gossip"
)

// TestHookArgvSecretNotLogged: a password written in a hook's own arguments, which check-config
// shows as "redacted", was logged as written when the hook's output held it — a script under
// set -x traces its commands, one may print the command it runs: only $PGPASSWORD was masked.
// The logged output has each secret check-config hides masked too.
func TestHookArgvSecretNotLogged(t *testing.T) {
	h, logged := loggingHooks()
	h.run(t.Context(), "on_promote", []string{"sh", "-c", "set -x; PGPASSWORD='pw s3cret-1'; : redis-cli -a tok-s3cret-2 ping; exit 1"}, gossip.RoleMaster, 7)
	h.run(t.Context(), "on_demote", []string{"sh", "-c", `echo "running check $*"`, "sh", "--password", "pw-s3cret-3"}, gossip.RoleBackup, 7)
	out := logged()
	if strings.Contains(out, "s3cret") {
		t.Errorf("the sidecar's log holds a password written in a hook's arguments:\n%s", out)
	}
	if !strings.Contains(out, "<redacted>") || !strings.Contains(out, "running check --password") {
		t.Errorf("the hooks' output was not logged, masked:\n%s", out)
	}
}

// TestHookArgvSecretQuotedOrCut: a secret written in a hook's arguments is masked in the
// logged output as bash's set -x quotes it too (a quote in it closed, escaped and opened
// again), and its first bytes are dropped when the output kept stops inside it
// (the first 64 KiB are logged): both are done for $PGPASSWORD, and were not for these.
func TestHookArgvSecretQuotedOrCut(t *testing.T) {
	h, logged := loggingHooks()
	h.run(t.Context(), "on_promote", []string{"bash", "-xc", `: --password "it's-s3cret-1"; exit 1`}, gossip.RoleMaster, 7)
	// The output kept (hookOutputMax) ends with "tok-s3cr", the start of the token.
	h.run(t.Context(), "on_demote", []string{"sh", "-c", "printf '%*s' $1 ''; echo tok-s3cret-2; : --token tok-s3cret-2", "sh", strconv.Itoa(hookOutputMax - 8)}, gossip.RoleBackup, 7)
	out := logged()
	for _, leak := range []string{"s3cret-1", "tok-s3cr"} {
		if strings.Contains(out, leak) {
			t.Errorf("the sidecar's log holds %q, of a password written in a hook's arguments:\n%.300s", leak, out[max(0, strings.Index(out, leak)-150):])
		}
	}
	if !strings.Contains(out, "<redacted>") {
		t.Errorf("the hooks' output was not logged, masked")
	}
}
