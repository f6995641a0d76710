package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitBinary is where the example units expect the tandem binary.
const unitBinary = "/usr/local/bin/tandem"

// TestSystemdUnits runs the command lines of examples/systemd's units with this build, the
// unit's paths moved into a temp dir: the check before the start passes on the file the start
// reads, the member starts and answers /healthz, and the unit's stop signal ends it cleanly
// within its TimeoutStopSec. Where systemd-analyze is installed, `systemd-analyze verify` must
// find nothing to say about either file.
func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, instance string
		config         func(dir, admin string) string
	}{
		{"tandem@.service", "site1", func(dir, admin string) string {
			return fmt.Sprintf(`site = "site1"
data_dir = %q
[gossip]
bind = "127.0.0.1:%d"
profile = "fast"
[[server.endpoint]]
name = "operators"
address = "127.0.0.1:%d"
[[proxy.listener]]
endpoint = "operators"
listen = "127.0.0.1:%d"
[admin]
listen = %q
`, filepath.Join(dir, "data"), freePort(t), freePort(t), freePort(t), admin)
		}},
		{"tandem-witness.service", "", func(dir, admin string) string {
			return fmt.Sprintf(`site = "witness"
data_dir = %q
[gossip]
bind = "127.0.0.1:%d"
profile = "fast"
[admin]
listen = %q
`, filepath.Join(dir, "data"), freePort(t), admin)
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("../../examples/systemd", tc.file)
			text, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := exec.LookPath("systemd-analyze"); err == nil {
				verifyUnit(t, tc.file, tc.instance, string(text))
			} else {
				t.Log("systemd-analyze not installed: the unit's syntax is not checked")
			}

			dir := tempDir(t, "e2e-")
			svc := unitService(t, string(text), func(s string) string {
				s = strings.ReplaceAll(s, unitBinary, bins.tandem)
				s = strings.ReplaceAll(s, "%i", tc.instance)
				return strings.ReplaceAll(s, "/etc/tandem/", dir+"/")
			})
			pre, run := strings.Fields(svc.one(t, "ExecStartPre")), strings.Fields(svc.one(t, "ExecStart"))
			if len(run) < 2 || run[0] != bins.tandem {
				t.Fatalf("ExecStart %q does not run %s", run, unitBinary)
			}
			// The configuration goes where the start reads it: the check must look at that file.
			var cfg string
			for i, a := range run {
				if a == "-config" && i+1 < len(run) {
					cfg = run[i+1]
				}
			}
			if cfg == "" || filepath.Dir(cfg) != dir {
				t.Fatalf("ExecStart %q names no -config under /etc/tandem", run)
			}
			admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			writeFile(t, cfg, tc.config(dir, admin))
			if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("ExecStartPre %q: %v\n%s", pre, err, out)
			}

			p := start(t, tc.file, run...)
			waitFor(t, 10*time.Second, "/healthz 200", func() bool { return httpStatus(admin, "/healthz") == 200 })

			sig := unitSignal(t, svc.one(t, "KillSignal"))
			limit, err := strconv.Atoi(svc.one(t, "TimeoutStopSec"))
			if err != nil {
				t.Fatalf("TimeoutStopSec: %v", err)
			}
			if km := svc.one(t, "KillMode"); km != "mixed" {
				t.Errorf("KillMode=%s: the stop signal would reach the hooks the sidecar runs too", km)
			}
			begun := time.Now()
			p.signal(t, sig)
			if !p.exited(time.Duration(limit) * time.Second) {
				t.Fatalf("still running %d s (TimeoutStopSec) after %v", limit, sig)
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit code %d after %v, want 0 (a graceful stop)", code, sig)
			}
			t.Logf("stopped %v after %v", time.Since(begun).Round(time.Millisecond), sig)
		})
	}
}

// verifyUnit runs systemd-analyze verify on the unit (as an instance of it, for a template),
// with the binary it names replaced by this build: any complaint fails the test.
func verifyUnit(t *testing.T, file, instance, text string) {
	t.Helper()
	dir := tempDir(t, "e2e-")
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strings.ReplaceAll(text, unitBinary, bins.tandem)), 0o644); err != nil {
		t.Fatal(err)
	}
	name := file
	if instance != "" {
		name = strings.Replace(file, "@.", "@"+instance+".", 1)
	}
	out, err := exec.Command("systemd-analyze", "verify", filepath.Join(dir, name)).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", file, err, out)
	}
}

// unitKeys are the settings of one section of a unit file, by key, in order.
type unitKeys map[string][]string

// one returns the value of key, which must be set exactly once.
func (u unitKeys) one(t *testing.T, key string) string {
	t.Helper()
	if len(u[key]) != 1 {
		t.Fatalf("[Service] %s is set %d times, want once", key, len(u[key]))
	}
	return u[key][0]
}

// unitService reads the [Service] section of a unit file, passing each value through subst.
// Enough of systemd's syntax for the example units: no line continuations or quoting.
func unitService(t *testing.T, text string, subst func(string) string) unitKeys {
	t.Helper()
	keys := unitKeys{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		case section == "Service":
			k, v, ok := strings.Cut(line, "=")
			if !ok || strings.HasSuffix(line, `\`) {
				t.Fatalf("unit line %q: want key=value on one line", line)
			}
			keys[k] = append(keys[k], subst(v))
		}
	}
	return keys
}

// unitSignal turns a KillSignal value into a signal.
func unitSignal(t *testing.T, name string) syscall.Signal {
	t.Helper()
	switch name {
	case "SIGTERM":
		return syscall.SIGTERM
	case "SIGINT":
		return syscall.SIGINT
	}
	t.Fatalf("KillSignal=%s: the sidecar stops gracefully on SIGTERM and SIGINT only", name)
	return 0
}
