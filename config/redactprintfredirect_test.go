package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandPrintfRedirectionFirst: a printf whose redirection stands before its
// format (printf > ~/.pgpass 'db:5432:*:%s:%s\n' m s3cret, as a shell takes it anywhere in
// the command) had the redirection read for its format, the format for an argument: no
// argument was a password, and s3cret was shown in check-config and no secret to mask in the
// output's log.
func TestRedactedCommandPrintfRedirectionFirst(t *testing.T) {
	for _, tc := range []struct{ why, script, shown string }{
		{"> file", `printf > ~/.pgpass 'db:5432:*:%s:%s\n' m s3cret`, `printf > ~/.pgpass 'db:5432:*:%s:%s\n' m redacted`},
		{">>file --", `printf >>~/.pgpass -- '%s:%s:*:%s:%s\n' db 5432 m s3cret`, `printf >>~/.pgpass -- '%s:%s:*:%s:%s\n' db 5432 m redacted`},
		{"-v, 2>", `printf -v l 2>/dev/null '%s:%s:*:%s:%s\n' db 5432 m s3cret; echo "$l" > ~/.pgpass`, `printf -v l 2>/dev/null '%s:%s:*:%s:%s\n' db 5432 m redacted; echo "$l" > ~/.pgpass`},
	} {
		argv := []string{"sh", "-c", tc.script}
		if got := redactArgv(argv)[2]; got != tc.shown {
			t.Errorf("%s: %q shown as %q, want %q", tc.why, tc.script, got, tc.shown)
		}
		if got := CommandSecrets(argv); !slices.Equal(got, []string{"s3cret"}) {
			t.Errorf("%s: %q: secrets %q, want [s3cret]", tc.why, tc.script, got)
		}
	}
}
