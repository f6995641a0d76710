package e2e

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	if err != nil || !strings.Contains(string(out), "witness, a witness, as tandem check-config -witness") || strings.Contains(string(out), "priority") {
		t.Errorf("check-config -witness: %v\n%s", err, out)
	}
}

// TestPromoteForce: a site that starts cold and never sees its peer waits (DESIGN §3) until an
// operator runs `tandem promote -force`; without -force the command refuses.
func TestPromoteForce(t *testing.T) {
	dir := tempDir(t, "e2e-")
	srv := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "site1.toml")
	// The peer's gossip address is a free port nobody listens on.
	writeFile(t, cfg, fmt.Sprintf(`site = "site1"
priority = 1
data_dir = %q
[gossip]
bind = "127.0.0.1:%d"
join = ["127.0.0.1:%d"]
profile = "fast"
[server]
health_interval = "100ms"
[[server.endpoint]]
name = "operators"
address = %q
[[proxy.listener]]
endpoint = "operators"
listen = %q
[proxy]
connect_timeout = "1s"
[admin]
listen = %q
`, filepath.Join(dir, "data"), freePort(t), freePort(t), srv, proxyAddr, admin))
	start(t, "site1-server", bins.wireserver, "-listen", srv, "-name", "site1")
	waitDial(t, srv)
	start(t, "site1-tandem", bins.tandem, "run", "-config", cfg)
	waitDial(t, admin)

	// It waits: alive, healthy, but not master, and says why.
	time.Sleep(3 * time.Second)
	if code := httpStatus(admin, "/master"); code != 503 {
		t.Fatalf("GET /master on a cold site alone: %d, want 503", code)
	}
	if st := httpBody(t, admin, "/status"); !strings.Contains(st, "cold start") {
		t.Fatalf("status does not say it waits at cold start:\n%s", st)
	}
	out, err := exec.Command(bins.tandem, "promote", "-config", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "-force is required") {
		t.Fatalf("promote without -force: %v, want exit 2 naming -force\n%s", err, out)
	}
	if code := httpStatus(admin, "/master"); code != 503 {
		t.Fatalf("GET /master after a refused promote: %d, want 503", code)
	}

	out, err = exec.Command(bins.tandem, "promote", "-force", "-config", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cold-start wait lifted") {
		t.Fatalf("promote -force: %v\n%s", err, out)
	}
	waitFor(t, 5*time.Second, "site1 master after promote -force", func() bool { return httpStatus(admin, "/master") == 200 })
	servedBy(t, proxyAddr, "site1", 5*time.Second)

	// Asked again, there is nothing to force.
	out, err = exec.Command(bins.tandem, "promote", "-force", "-admin", admin).CombinedOutput()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "nothing to force") {
		t.Fatalf("promote -force on a master: %v, want exit 1 saying nothing to force\n%s", err, out)
	}
}

// TestRunStopsWhenAPartFails: when one part of the sidecar cannot run (here gossip, its port
// taken), the process stops with the error instead of serving on without it.
func TestRunStopsWhenAPartFails(t *testing.T) {
	dir := tempDir(t, "e2e-")
	taken, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := filepath.Join(dir, "site1.toml")
	writeFile(t, cfg, fmt.Sprintf(`site = "site1"
data_dir = %q
[gossip]
bind = %q
[[server.endpoint]]
name = "operators"
address = "127.0.0.1:%d"
[[proxy.listener]]
endpoint = "operators"
listen = "127.0.0.1:%d"
[admin]
listen = "127.0.0.1:%d"
`, filepath.Join(dir, "data"), taken.Addr().String(), freePort(t), freePort(t), freePort(t)))
	p := start(t, "site1-tandem", bins.tandem, "run", "-config", cfg)
	if !p.exited(10 * time.Second) {
		t.Fatalf("tandem still runs 10 s after its gossip failed to start:\n%s", p.out.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(p.out.String(), "address already in use") {
		t.Errorf("exit code %d, want 1 with the gossip error:\n%s", code, p.out.String())
	}
}

// TestBadConfigExitsTwo: every command given a file it cannot use exits 2, as tandem help and
// the README say of the admin and database commands ("2 on a usage error or a file they cannot
// use"), naming the file's errors; tandem run and tandem witness exited 1, the status they exit
// with when a part of the running member fails (TestRunStopsWhenAPartFails), so a supervisor
// (systemd's RestartPreventExitStatus) could not tell a file to fix from a start to retry.
// check-config, whose answer the errors are, exits 1 as it says.
func TestBadConfigExitsTwo(t *testing.T) {
	const bad = "../../config/testdata/bad.toml"
	witness := filepath.Join(tempDir(t, "e2e-"), "witness.toml")
	writeFile(t, witness, "site = \"w\"\ndata_dir = \"/tmp/tandem-w\"\ncolour = \"blue\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n")
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"run", "-config", bad}, 2},
		{[]string{"witness", "-config", witness}, 2},
		{[]string{"status", "-config", bad}, 2},
		{[]string{"switchover", "-config", bad}, 2},
		{[]string{"promote", "-force", "-config", bad}, 2},
		{[]string{"clear-split-brain", "-config", bad}, 2},
		{[]string{"resync", "-config", bad}, 2},
		{[]string{"install", "-config", bad}, 2},
		{[]string{"verify", "-config", bad}, 2},
		{[]string{"resolve", "-config", bad}, 2},
		{[]string{"check-config", bad}, 1},
	} {
		out, err := exec.Command(bins.tandem, tc.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.want || !strings.Contains(string(out), "colour: unknown key") {
			t.Errorf("tandem %s: %v, want exit %d naming the file's errors\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}

// TestRunMetaTooLargeExitsTwo: a file whose endpoints leave the gossip metadata no room
// (gossip.ErrMetaTooLarge) is one tandem run cannot use: check-config reports it as the file's
// error, at its server.endpoint line, and exits 1 as it does on every error; tandem run exited
// 1 too, a member that failed once started (a supervisor retries it), not 2 as on every other
// error of the file (TestBadConfigExitsTwo). It exits 2, naming the line as check-config does.
func TestRunMetaTooLargeExitsTwo(t *testing.T) {
	dir := tempDir(t, "e2e-")
	f := filepath.Join(dir, "site1.toml")
	src := fmt.Sprintf("site = \"site1\"\ndata_dir = %q\n[gossip]\nbind = \"127.0.0.1:%d\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[server]\n",
		filepath.Join(dir, "data"), freePort(t))
	for i := range 12 {
		src += fmt.Sprintf("[[server.endpoint]]\nname = \"e%d_%s\"\naddress = \"127.0.0.1:%d\"\n", i, strings.Repeat("x", 40), 1+i)
	}
	writeFile(t, f, src)
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"check-config", f}, 1},
		{[]string{"run", "-config", f}, 2},
	} {
		cmd := exec.Command(bins.tandem, tc.args...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("tandem %s still running after 20 s; want it to refuse the file\n%s", strings.Join(tc.args, " "), out.String())
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.want || !strings.Contains(out.String(), "server.endpoint: ") ||
			!strings.Contains(out.String(), "gossip metadata too large") {
			t.Errorf("tandem %s: %v, want exit %d naming server.endpoint's line and the metadata too large\n%s",
				strings.Join(tc.args, " "), err, tc.want, out.String())
		}
	}
}
