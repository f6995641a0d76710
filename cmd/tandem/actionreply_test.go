package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestActionNotTandem: switchover, promote, resync and clear-split-brain asked of an HTTP server
// that is no member's admin API (another service on that port, which answers a POST with 200)
// printed whatever it answered, with exit 0: the operator was told nothing of a handover that
// never started. As tandem status does, each must say that what answered is not a Tandem admin
// API, with exit 1; a member's answer is printed.
func TestActionNotTandem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		member string // a member's answer
	}{
		{[]string{"switchover"}, "switchover started on the master site1\n"},
		{[]string{"switchover", "site2"}, "switchover started on the master site1\n"},
		{[]string{"promote", "-force"}, "site2: cold-start wait lifted at term 4; whatever another site committed after that term is lost if that site is master elsewhere\n"},
		{[]string{"promote", "-force"}, "site2: cold-start wait lifted at term 4; whatever another site committed after that term is lost if that site is master elsewhere\nsite2 still waits: no majority\n"},
		{[]string{"promote", "-accept-loss", "4"}, "site2: the loss of what the master of term 4 committed that this site's database lacks is accepted; this site may take control without it\n"},
		{[]string{"resync"}, "site1: the peer database holds a copy of the application tables; dual commit resumed\n"},
		{[]string{"clear-split-brain"}, "site1: split brain of term 3 cleared; failback to this site is allowed again\n"},
	} {
		for _, body := range []string{"<html><body>It works!</body></html>\n", `{"status":"UP"}`, "", tc.member} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(body))
			}))
			args := append([]string{tc.args[0], "-admin", strings.TrimPrefix(srv.URL, "http://")}, tc.args[1:]...)
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			srv.Close()
			ok := body == tc.member
			switch {
			case ok && (code != 0 || stdout.String() != body):
				t.Errorf("%q answered %q: exit %d, stdout %q, stderr %q; want exit 0 and the answer printed", tc.args, body, code, stdout.String(), stderr.String())
			case !ok && (code != 1 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "not a Tandem admin API")):
				t.Errorf("%q answered %q: exit %d, stdout %q, stderr %q; want exit 1 saying it is not a Tandem admin API", tc.args, body, code, stdout.String(), stderr.String())
			}
		}
	}
}
