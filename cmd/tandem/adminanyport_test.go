package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestAdminConfigAnyPort: a member whose admin.listen has port 0 listens on a free port it
// picks (its log names it: "tandem started ... admin=127.0.0.1:PORT"); an admin command given
// that file with -config dialed port 0 itself, and failed with "connect: connection refused"
// and exit 1, as if the member were down. The file cannot tell the command where the member
// is: it is refused at once (exit 2), naming admin.listen and -admin; with -admin the file
// still gives the token.
func TestAdminConfigAnyPort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site1.toml")
	src := fmt.Sprintf("site = \"site1\"\ndata_dir = %q\n[gossip]\nbind = \"127.0.0.1:7946\"\n[server]\n[[server.endpoint]]\nname = \"op\"\naddress = \"127.0.0.1:7000\"\n[admin]\nlisten = \"127.0.0.1:0\"\n", dir)
	if err := os.WriteFile(cfg, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"status"}, {"switchover"}, {"promote", "-force"}, {"clear-split-brain"}, {"resync"}} {
		var stdout, stderr bytes.Buffer
		args := append([]string{cmd[0], "-config", cfg}, cmd[1:]...)
		code := run(args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "admin.listen") || !strings.Contains(stderr.String(), "-admin") {
			t.Errorf("%q with admin.listen on port 0: exit %d, stderr %q; want exit 2 naming admin.listen and -admin", cmd, code, stderr.String())
		}
	}

	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"clear-split-brain", "-config", cfg, "-admin", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr)
	if hits.Load() != 1 {
		t.Errorf("clear-split-brain -config (port 0) -admin ADDR: exit %d, stderr %q; the member at -admin was not asked", code, stderr.String())
	}
}
