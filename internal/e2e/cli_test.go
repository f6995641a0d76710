package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// TestCheckConfig: the binary prints every error with its file and line and
// exits 1; a good file prints the resolved configuration with secrets hidden.
func TestCheckConfig(t *testing.T) {
	out, err := exec.Command(bins.tandem, "check-config", "../../config/testdata/bad.toml").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("check-config on a bad file: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		"bad.toml:4: colour: unknown key",
		"bad.toml:8: gossip.failback_delay: \"30 seconds\" is not a duration",
		"bad.toml:20: proxy.listener[1].endpoint: \"admin\" names no [[server.endpoint]]",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = exec.Command(bins.tandem, "check-config", "../../examples/site1.toml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `site = "site1"`) || !strings.Contains(string(out), "NOT encrypted") {
		t.Errorf("check-config on examples/site1.toml: %v\n%s", err, out)
	}
	out, err = exec.Command(bins.tandem, "check-config", "-witness", "../../examples/witness.toml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `kind = "witness"`) {
		t.Errorf("check-config -witness: %v\n%s", err, out)
	}
}
