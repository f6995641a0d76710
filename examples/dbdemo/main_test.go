package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestDemo runs the demo's story with real tandem and WireServer processes and real
// PostgreSQL clusters: every step checks what it shows (the writes acknowledged by site1, site2
// serving them after the whole of site1 is killed, site1 master again with site2's write,
// tandem verify), and afterwards nothing it started is left: no process, no cluster, no dir.
func TestDemo(t *testing.T) {
	// Not t.TempDir: a pgtest dir is removed by the next test process too, should go test's
	// -timeout kill this one before its cleanups.
	bin, release, err := pgtest.TempDir("dbdemo-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	bins := map[string]string{"tandem": "../../cmd/tandem", "wireserver": "../wireserver"}
	for name, pkg := range bins {
		// -race like the suite's own builds, so the build cache serves the packages.
		if b, err := exec.Command("go", "build", "-race", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	var buf bytes.Buffer
	out = &buf
	defer func() { out = os.Stdout }()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := &demo{ctx: ctx, tandem: filepath.Join(bin, "tandem"), wireserver: filepath.Join(bin, "wireserver")}
	t.Cleanup(d.close) // should the demo panic; close below checks what it removes
	err = d.run()
	var log []byte
	if err != nil {
		log, _ = os.ReadFile(d.logPath)
	}
	d.close()
	t.Logf("demo:\n%s", buf.String())
	if errors.Is(err, pgtest.ErrNoPostgres) && os.Getenv("CI") == "" {
		t.Skipf("%v; skipping (in CI a missing PostgreSQL is a failure)", err)
	}
	if err != nil {
		t.Fatalf("demo: %v\nlog:\n%s", err, log)
	}
	if !strings.Contains(buf.String(), "identical") {
		t.Fatal("the demo did not show tandem verify finding both databases identical")
	}
	if _, err := os.Stat(d.dir); !os.IsNotExist(err) {
		t.Errorf("the demo's dir %s is still there (%v)", d.dir, err)
	}
	for _, s := range d.sites {
		if _, err := os.Stat(s.pg.Dir()); !os.IsNotExist(err) {
			t.Errorf("%s's cluster dir %s is still there (%v)", s.name, s.pg.Dir(), err)
		}
	}
	for _, c := range d.procs {
		if c.ProcessState == nil {
			t.Errorf("a process the demo started was not waited for: %v", c.Args)
		}
	}
}
