package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// blockedIn sums, from a block profile in the text form of pprof.Lookup("block").WriteTo(w, 1),
// the time goroutines spent blocked in stacks that contain each of the named functions (a
// substring of the frame's function name). A stack is counted once per name.
func blockedIn(profile string, names []string) (map[string]time.Duration, error) {
	sc := bufio.NewScanner(strings.NewReader(profile))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cps float64
	out := map[string]time.Duration{}
	var cycles float64
	seen := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "cycles/second="):
			v, err := strconv.ParseFloat(strings.TrimPrefix(line, "cycles/second="), 64)
			if err != nil {
				return nil, fmt.Errorf("block profile: %q: %w", line, err)
			}
			cps = v
		case len(line) > 0 && line[0] >= '0' && line[0] <= '9':
			// "cycles count @ pc pc …" starts a record.
			f := strings.Fields(line)
			cycles, _ = strconv.ParseFloat(f[0], 64)
			clear(seen)
		case strings.HasPrefix(line, "#\t"):
			// "#\t0xpc\tpkg.func+0xoff\tfile:line"
			for _, n := range names {
				if !seen[n] && strings.Contains(line, n) {
					seen[n] = true
					if cps > 0 {
						out[n] += time.Duration(cycles / cps * float64(time.Second))
					}
				}
			}
		}
	}
	if cps == 0 {
		return nil, fmt.Errorf("block profile: no cycles/second header")
	}
	return out, sc.Err()
}

// pprofTop runs go tool pprof -top on the profile files and returns its output.
func pprofTop(ctx context.Context, goTool string, n int, extra []string, files ...string) (string, error) {
	args := append([]string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(n)}, extra...)
	args = append(args, files...)
	cmd := exec.CommandContext(ctx, goTool, args...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, msg)
	}
	return string(out), nil
}
