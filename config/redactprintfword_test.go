package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandPrintfArgumentOperator: a printf's argument that is a password file's
// password, a shell operator glued to it (the ')' of the $(...) it is in, a ';', a '|', a
// redirection's '>'), was read to the word's end past the operator, the secret for the
// output's log holding it (s3cret), the password the file holds not masked there; what
// follows the operator was taken for more of printf's arguments (hiding ~/.pgpass, cat's).
// The shell ends the word at the operator.
func TestRedactedCommandPrintfArgumentOperator(t *testing.T) {
	for _, tc := range []struct {
		why, script, shown string
		secrets            []string
	}{
		{"$(...)", `x=$(printf '%s:%s:*:%s:%s' db 5432 m s3cret); echo "$x" > ~/.pgpass`,
			`x=$(printf '%s:%s:*:%s:%s' db 5432 m redacted); echo "$x" > ~/.pgpass`, []string{"s3cret"}},
		{";", `printf 'db:5432:*:m:%s\n' s3cret;cat ~/.pgpass`, `printf 'db:5432:*:m:%s\n' redacted;cat ~/.pgpass`, []string{"s3cret"}},
		{"|", `printf 'db:5432:*:m:%s\n' s3cret|tee ~/.pgpass`, `printf 'db:5432:*:m:%s\n' redacted|tee ~/.pgpass`, []string{"s3cret"}},
		{">", `printf 'db:5432:*:m:%s\n' s3cret>~/.pgpass;printf '%s\n' ok`, `printf 'db:5432:*:m:%s\n' redacted>~/.pgpass;printf '%s\n' ok`, []string{"s3cret"}},
		{"2>&1, and the next line's", "printf 'db:5432:*:%s:%s\\n' m s3cret 2>&1>>~/.pgpass&&printf 'bk:5433:*:%s:%s\\n' m x2>>~/.pgpass",
			"printf 'db:5432:*:%s:%s\\n' m redacted 2>&1>>~/.pgpass&&printf 'bk:5433:*:%s:%s\\n' m redacted>>~/.pgpass", []string{"s3cret", "x2"}},
		// Operators quoted, escaped or in an expansion are the password's.
		{"quoted", `printf 'db:5432:*:m:%s\n' "s3;c)r>t"'|&'s\;\>$(cat /k)x > ~/.pgpass`,
			`printf 'db:5432:*:m:%s\n' redacted > ~/.pgpass`, []string{`"s3;c)r>t"'|&'s\;\>$(cat /k)x`, `"s3;c)r>t"|&s\;\>$(cat /k)x`}},
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
