package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCommandHelpAfterFlags: COMMAND -h lists the command's flags with exit 0 wherever -h comes
// among the flags: after another flag (status -admin ADDR -h) it exited 2, as for a wrong flag.
func TestCommandHelpAfterFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"status", "-admin", "127.0.0.1:1", "-h"},
		{"switchover", "-admin", "127.0.0.1:1", "-help"},
		{"promote", "-force", "-h"},
		{"clear-split-brain", "-token-file", "/nonexistent", "--help"},
		{"resync", "-admin", "127.0.0.1:1", "-h"},
		{"run", "-log-level", "debug", "-h"},
		{"witness", "-config", "/nonexistent", "-h"},
		{"check-config", "-witness", "-h"},
		{"install", "-config", "/nonexistent", "-h"},
		{"verify", "-config", "/nonexistent", "-h"},
		{"resolve", "-config", "/nonexistent", "-h"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		if code != 0 || !strings.Contains(stderr.String(), "Usage of "+args[0]) {
			t.Errorf("tandem %s: exit %d, stderr %q; want exit 0 and the flags listed", strings.Join(args, " "), code, stderr.String())
		}
	}
	// A wrong flag is still a wrong flag, and -h given as a flag's value is that value.
	for _, args := range [][]string{
		{"status", "-admin", "127.0.0.1:1", "-nosuchflag"},
		{"status", "-admin", "-h"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 {
			t.Errorf("tandem %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), code, stderr.String())
		}
	}
}
