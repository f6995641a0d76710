//go:build unix

package main

import (
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
