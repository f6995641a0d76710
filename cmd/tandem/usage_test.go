package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestUsageNamesEveryFlag: tandem help names every command, and every flag each command's -h
// lists, so the summary an operator reads first leaves nothing out.
func TestUsageNamesEveryFlag(t *testing.T) {
	flagLine := regexp.MustCompile(`(?m)^  (-[a-z-]+)`)
	for _, cmd := range []string{"run", "witness", "check-config", "status", "switchover", "promote",
		"clear-split-brain", "resync", "install", "verify", "resolve"} {
		if !strings.Contains(usage, "\n  "+cmd+" ") {
			t.Errorf("usage does not list the command %s", cmd)
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{cmd, "-h"}, &stdout, &stderr); code != 0 {
			t.Errorf("%s -h exits %d; want 0", cmd, code)
		}
		flags := flagLine.FindAllStringSubmatch(stderr.String(), -1)
		if len(flags) == 0 {
			t.Errorf("%s -h lists no flag:\n%s", cmd, stderr.String())
		}
		for _, f := range flags {
			if !regexp.MustCompile(regexp.QuoteMeta(f[1]) + `[^a-z-]`).MatchString(usage) {
				t.Errorf("usage does not name %s's flag %s", cmd, f[1])
			}
		}
	}
}
