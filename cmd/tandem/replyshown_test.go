package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
)

// TestRefusalShownBounded: an admin command answered with an error status prints the answer's
// message, but not more of it than a message takes, and without the control characters a
// terminal acts on: another server at the address given (a port given wrong) answered 404 or
// 500 with a page of a megabyte, or with escape sequences, and the command wrote all of it, as
// read, to the operator's terminal. A member's refusal is printed whole.
func TestRefusalShownBounded(t *testing.T) {
	t.Parallel()
	refusal := "site1 is not waiting at cold start (role backup): nothing to force; it waits because: " + strings.Repeat("not current, ", 60) + "and so on"
	for _, tc := range []struct {
		name, body string
		code       int
		want       string // what stderr must hold
	}{
		{"a megabyte", strings.Repeat("<p>Not Found</p>\n", 1<<16), http.StatusNotFound, "<p>Not Found</p>"},
		{"escape sequences", "\x1b]0;owned\x07\x1b[2J\x1b[31mgone\x1b[0m", http.StatusInternalServerError, "gone"},
		{"a member's refusal", refusal, http.StatusConflict, refusal},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.code)
			w.Write([]byte(tc.body))
		}))
		for _, args := range [][]string{{"status"}, {"switchover"}, {"promote", "-force"}} {
			var stdout, stderr bytes.Buffer
			code := run(append(args, "-admin", strings.TrimPrefix(srv.URL, "http://")), &stdout, &stderr)
			out := stderr.String()
			if code != 1 || stdout.Len() != 0 || !strings.Contains(out, tc.want) {
				t.Errorf("%s answered %d with %s: exit %d, stdout %d bytes, stderr %.200q; want exit 1 and the message", args[0], tc.code, tc.name, code, stdout.Len(), out)
			}
			if len(out) > 8<<10 {
				t.Errorf("%s answered %d with %s: %d bytes written to stderr", args[0], tc.code, tc.name, len(out))
			}
			if i := strings.IndexFunc(out, func(r rune) bool { return unicode.IsControl(r) && r != '\n' }); i >= 0 {
				t.Errorf("%s answered %d with %s: stderr holds the control character %q: %.200q", args[0], tc.code, tc.name, out[i], out)
			}
		}
		srv.Close()
	}
}
