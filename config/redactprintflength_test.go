package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandPrintfLengthModifier: a printf's conversion with a length modifier
// (%ld, %lu, %hd: bash's printf takes them, as C's does, and ignores them) or bash's %(...)T
// (a time, taking an argument) was no conversion to redactPrintfPgpass: the arguments after
// it were counted one too early, the user's hidden for the password and the password shown
// in check-config, no secret to mask in the output's log; as a port (%s:%lu:*:m:s3cret\n) it
// was none to argPgpassLine, the line's password shown.
func TestRedactedCommandPrintfLengthModifier(t *testing.T) {
	for _, tc := range []struct {
		why, script, shown string
		secrets            []string
	}{
		{"%ld", `printf '%s:%ld:*:%s:%s\n' db 5432 m s3cret > ~/.pgpass`, `printf '%s:%ld:*:%s:%s\n' db 5432 m redacted > ~/.pgpass`, []string{"s3cret"}},
		{"%(...)T", `printf '%(%Y)T,%s:%hu:*:%s:%s\n' -1 db 5432 m s3cret > ~/.pgpass`, `printf '%(%Y)T,%s:%hu:*:%s:%s\n' -1 db 5432 m redacted > ~/.pgpass`, []string{"s3cret"}},
		{"port %lu", `printf '%s:%lu:*:m:s3cret\n' db 5432 > ~/.pgpass`, `printf '%s:%lu:*:m:redacted\n' db 5432 > ~/.pgpass`, []string{"s3cret"}},
		{"password %ls", `printf 'db:5432:*:m:%ls\n' s3cret > ~/.pgpass`, `printf 'db:5432:*:m:%ls\n' redacted > ~/.pgpass`, []string{"s3cret"}},
	} {
		argv := []string{"sh", "-c", tc.script}
		if got := redactArgv(argv)[2]; got != tc.shown {
			t.Errorf("%s: %q shown as %q, want %q", tc.why, tc.script, got, tc.shown)
		}
		if got := CommandSecrets(argv); !slices.Equal(got, tc.secrets) {
			t.Errorf("%s: %q: secrets %q, want %q", tc.why, tc.script, got, tc.secrets)
		}
	}
}
