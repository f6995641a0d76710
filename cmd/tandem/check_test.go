package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-ha/tandem/config"
)

// TestCheckConfigFenceDelay: check-config refuses a fence_delay that tandem run refuses (shorter
// than a cut-off master of the profile takes to fence itself), and takes one run takes.
func TestCheckConfigFenceDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		fence string
		code  int
	}{
		{"1s", 1},
		{"5s", 0},
	} {
		dir := t.TempDir()
		f := filepath.Join(dir, "site1.toml")
		src := "site = \"site1\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7946\"\njoin = [\"127.0.0.1:7947\"]\n" +
			"witness = true\nprofile = \"lan\"\nfence_delay = \"" + tc.fence + "\"\n" +
			"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n"
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run([]string{"check-config", f}, &stdout, &stderr)
		if code != tc.code {
			t.Errorf("fence_delay %s: exit %d, want %d; stderr:\n%s", tc.fence, code, tc.code, stderr.String())
		}
		if tc.code != 0 && !strings.Contains(stderr.String(), "fence_delay") {
			t.Errorf("fence_delay %s: stderr %q does not name fence_delay", tc.fence, stderr.String())
		}
	}
}

// TestCheckConfigWitnessHint: a witness file checked as a site's fails (it has no [server]), and
// the error says how to check it as one (config.Load adds the hint).
func TestCheckConfigWitnessHint(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check-config", "../../examples/witness.toml"}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr.String(), "-witness") {
		t.Errorf("stderr %q does not point at -witness", stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check-config", "-witness", "../../examples/witness.toml"}, &stdout, &stderr); code != 0 {
		t.Errorf("-witness: exit %d, stderr %q", code, stderr.String())
	}
}

// TestCheckConfigEveryErrorWithLine: tandem check-config on a file with an unknown key, a bad
// duration and a listener naming a missing endpoint prints all three, each with its file, line
// and key, in line order, and exits 1.
func TestCheckConfigEveryErrorWithLine(t *testing.T) {
	t.Parallel()
	const file = "../../config/testdata/bad.toml"
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check-config", file}, &stdout, &stderr); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q: a file with errors prints no configuration", stdout.String())
	}
	got := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	want := []string{
		file + `:4: colour: unknown key`,
		file + `:8: gossip.failback_delay: "30 seconds" is not a duration`,
		file + `:20: proxy.listener[1].endpoint: "admin" names no [[server.endpoint]]`,
	}
	if len(got) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(got), len(want), stderr.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("line %d: %q, want it to start %q", i+1, got[i], w)
		}
	}
}

// TestCheckConfigMetadataTooLargeNamesLine: endpoints whose names and addresses do not fit the
// gossip metadata are refused by gossip.New, not by config.Load, and check-config printed that
// error with the file alone, without the line and key every other error names.
func TestCheckConfigMetadataTooLargeNamesLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "site1.toml")
	src := "site = \"site1\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n"
	for i := range 12 {
		src += fmt.Sprintf("[[server.endpoint]]\nname = \"an_endpoint_with_a_long_name_%02d\"\naddress = \"127.0.0.1:%d\"\n", i, 7300+i)
	}
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check-config", f}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr.String())
	}
	if want := f + ":6: server.endpoint: "; !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "too large") {
		t.Errorf("stderr %q, want it to start %q and say the metadata is too large", stderr.String(), want)
	}
}

// TestAdminTokenNoHeaderValue: an admin token with a control character inside (a token file of
// two lines) cannot be sent in an Authorization header: Go's client refuses it ("invalid header
// field value"), as others do. check-config passed such a file, and the member then ran with an
// admin API no client could use (every admin command, a Prometheus scrape, a switchover a
// backup forwards). The token file is refused, naming admin.token_file; so is such a file
// given to -token-file.
func TestAdminTokenNoHeaderValue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, content := range []string{"first\nsecond\n", "ab\x01cd", "ab\rcd", "ab\x7fcd"} {
		tok := filepath.Join(dir, fmt.Sprintf("token%d", i))
		if err := os.WriteFile(tok, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, fmt.Sprintf("witness%d.toml", i))
		src := "site = \"witness\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7948\"\n[admin]\nlisten = \"127.0.0.1:7183\"\ntoken_file = \"" + tok + "\"\n"
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check-config", "-witness", f}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "admin.token_file") {
			t.Errorf("token %q: check-config exit %d, stderr %q; want exit 1 naming admin.token_file", content, code, stderr.String())
		}
		stdout.Reset()
		stderr.Reset()
		if code := run([]string{"status", "-admin", "127.0.0.1:1", "-token-file", tok}, &stdout, &stderr); code != 2 {
			t.Errorf("token %q: status -token-file exit %d, stderr %q; want 2 (a file it cannot use)", content, code, stderr.String())
		}
	}
	// Spaces and tabs inside are fine: a header value holds them.
	tok := filepath.Join(dir, "spaced")
	if err := os.WriteFile(tok, []byte("ab cd\tef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := config.ReadToken(tok); err != nil || got != "ab cd\tef" {
		t.Errorf("ReadToken of a token with a space and a tab: %q, %v", got, err)
	}
}

// TestCheckConfigSignedPort: a port written with a sign (admin.listen = "127.0.0.1:+7180")
// passed check-config, as strconv.Atoi reads it, and tandem run listened on 7180; but tandem
// status -config then built the URL http://127.0.0.1:+7180, which no HTTP client takes, and
// failed (exit 1) for every admin command. A port is digits only.
func TestCheckConfigSignedPort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, port := range []string{"+7183", "-0"} {
		f := filepath.Join(dir, "witness.toml")
		src := "site = \"witness\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7948\"\n[admin]\nlisten = \"127.0.0.1:" + port + "\"\n"
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check-config", "-witness", f}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "admin.listen") {
			t.Errorf("admin.listen port %s: check-config exit %d, stderr %q; want exit 1 naming admin.listen", port, code, stderr.String())
		}
	}
}

// TestCheckConfigStateFileNamesDataDir: a state file in data_dir that the member cannot read
// (vote.json, split-brain.json, taken-over.json: gossip.New reads them, as tandem run does) fails check-config,
// with data_dir's line and key as every other error: it was printed with the file alone.
func TestCheckConfigStateFileNamesDataDir(t *testing.T) {
	t.Parallel()
	for _, state := range []string{"vote.json", "split-brain.json", "taken-over.json"} {
		dir := t.TempDir()
		f := filepath.Join(dir, "site1.toml")
		src := "site = \"site1\"\ndata_dir = \"" + dir + "\"\n[gossip]\nbind = \"127.0.0.1:7946\"\njoin = [\"127.0.0.1:7947\"]\nwitness = true\n" +
			"[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n"
		if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, state), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check-config", f}, &stdout, &stderr); code != 1 {
			t.Fatalf("%s: exit %d, want 1; stderr %q", state, code, stderr.String())
		}
		if want := f + ":2: data_dir: "; !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), state) {
			t.Errorf("%s: stderr %q, want it to start %q and name the file", state, stderr.String(), want)
		}
	}
}
