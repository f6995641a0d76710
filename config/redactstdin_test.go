package config

import "testing"

// TestRedactedCommandOptionValueStdin: a lone "-" after an option naming a secret (vault
// login --token -, a --password - read from stdin) is no secret: it was shown as "redacted",
// and, taken for a secret (CommandSecrets), every '-' of the command's output masked as
// <redacted> in the log. A value that starts with '-' is still hidden (--password -s3cret).
func TestRedactedCommandOptionValueStdin(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"tool", "--password", "-"}, nil},
		{[]string{"sh", "-c", "vault login --token - < /etc/tok"}, nil},
		{[]string{"sh", "-c", "tool --api-key -; echo ok"}, nil},
		{[]string{"tool", "--password", "-s3cret"}, []string{"tool", "--password", "redacted"}},
		{[]string{"sh", "-c", "tool --token -s3cret"}, []string{"sh", "-c", "tool --token redacted"}},
	})
}
