package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestStatusNotTandem: tandem status asked of an HTTP server that is no member's admin API
// (another service on that port) printed whatever that server answered, with exit 0. It must
// say that what answered is not a Tandem admin API, with exit 1; a member's status is printed.
func TestStatusNotTandem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{"<html><body>It works!</body></html>\n", false},
		{`{"status":"UP"}`, false},
		{`{"state":"running","role":"master"}`, false}, // Patroni's REST API, beside the PostgreSQL a site may run
		{`[{"site":"site1","role":"master"}]`, false},
		{"", false},
		{`{"site":"site1","kind":"site","role":"master","term":3}`, true},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(tc.body))
		}))
		var stdout, stderr bytes.Buffer
		code := run([]string{"status", "-admin", strings.TrimPrefix(srv.URL, "http://")}, &stdout, &stderr)
		srv.Close()
		switch {
		case tc.ok && (code != 0 || stdout.String() != tc.body):
			t.Errorf("status answered %q: exit %d, stdout %q, stderr %q; want exit 0 and the status printed", tc.body, code, stdout.String(), stderr.String())
		case !tc.ok && (code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "not a Tandem admin API")):
			t.Errorf("status answered %q: exit %d, stdout %q, stderr %q; want exit 1 saying it is not a Tandem admin API", tc.body, code, stdout.String(), stderr.String())
		}
	}
}
