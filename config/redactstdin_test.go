package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandOptionValueStdin: a lone "-" after an option naming a secret (vault
// login --token -, a --password - read from stdin) is no secret: it was shown as "redacted",
// and, taken for a secret (CommandSecrets), every '-' of the command's output masked as
// <redacted> in the log. A value that starts with '-' is still hidden (--password -s3cret).
func TestRedactedCommandOptionValueStdin(t *testing.T) {
	for _, tc := range []struct{ argv, want []string }{
		{[]string{"tool", "--password", "-"}, nil},
		{[]string{"sh", "-c", "vault login --token - < /etc/tok"}, nil},
		{[]string{"sh", "-c", "tool --api-key -; echo ok"}, nil},
		{[]string{"tool", "--password", "-s3cret"}, []string{"tool", "--password", "redacted"}},
		{[]string{"sh", "-c", "tool --token -s3cret"}, []string{"sh", "-c", "tool --token redacted"}},
	} {
		want := tc.want
		if want == nil {
			want = tc.argv
		}
		if got := redactArgv(tc.argv); !slices.Equal(got, want) {
			t.Errorf("%q: shown as %q, want %q", tc.argv, got, want)
		}
		if sec := CommandSecrets(tc.argv); (len(sec) > 0) != (tc.want != nil) {
			t.Errorf("%q: secrets %q", tc.argv, sec)
		}
	}
}
