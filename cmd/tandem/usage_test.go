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
	t.Parallel()
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

// TestCommandUsageLine: a command run without its -config prints its usage line as tandem help
// gives it, its other flags included (tandem resolve printed "usage: tandem resolve -config
// FILE", without -commit, -rollback or -accept-unknown-outcome; run and witness without
// -log-level).
func TestCommandUsageLine(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"run", "witness", "install", "verify", "resolve"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{cmd}, &stdout, &stderr); code != 2 {
			t.Errorf("%s without -config: exit %d, want 2", cmd, code)
		}
		line, ok := strings.CutPrefix(strings.TrimSpace(stderr.String()), "usage: tandem ")
		if !ok {
			t.Errorf("%s without -config prints %q; want its usage line", cmd, stderr.String())
			continue
		}
		for _, l := range strings.Split(usage, "\n") {
			if !strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "   ") {
				continue // not a command's synopsis
			}
			if synopsis, _, _ := strings.Cut(strings.TrimSpace(l), "   "); strings.HasPrefix(synopsis, cmd+" ") && synopsis != line {
				t.Errorf("%s without -config prints %q; tandem help says %q", cmd, line, synopsis)
			}
		}
	}
}
