package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminFlagsConfigErrors: -config with a broken site file shows that file's own error,
// not the errors of reading it as a witness file.
func TestAdminFlagsConfigErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "site1.toml")
	src := "site = \"site1\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\nhealth_interval = \"fast\"\n" +
		"[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status", "-config", f}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if want := f + ":6: server.health_interval: "; !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "witness") {
		t.Errorf("stderr:\n%s\nwant the file's own error %q and nothing about a witness", stderr.String(), want)
	}
}

// TestAdminFlagsWitnessFile: a witness file is still read as one.
func TestAdminFlagsWitnessFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "witness.toml")
	src := "site = \"witness\"\ndata_dir = \"/d\"\n[gossip]\nbind = \"127.0.0.1:7948\"\n[admin]\nlisten = \"127.0.0.1:1\"\n"
	if err := os.WriteFile(f, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, ok := adminFlags("status", []string{"-config", f}, &bytes.Buffer{})
	if !ok || c.base != "http://127.0.0.1:1" {
		t.Errorf("adminFlags = %+v, %v; want the witness's admin address", c, ok)
	}
}
