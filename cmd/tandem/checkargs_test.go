package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCheckConfigFlagAfterFile: check-config FILE -witness (the flag after the file, which Go's
// flag package does not parse) printed the usage line alone, where every other command says that
// flags go before the arguments and which arguments it did not take.
func TestCheckConfigFlagAfterFile(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := run([]string{"check-config", "witness.toml", "-witness"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "flags go before the arguments") || !strings.Contains(stderr.String(), `"-witness"`) {
		t.Errorf("check-config FILE -witness: exit %d, stderr %q; want exit 2 saying flags go before the arguments", code, stderr.String())
	}
}
