package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandAgain: redacting what check-config shows of a command leaves it as it
// is, with nothing more to hide: "redacted" is no secret. It was read as one, and as a
// header's scheme: "Authorization: redacted x" (of Authorization: s3cret x) read
// "Authorization: redacted redacted", and every "redacted" was noted as a secret to mask.
func TestRedactedCommandAgain(t *testing.T) {
	for _, argv := range [][]string{
		{"sh", "-c", "curl -H 'Authorization: s3cret' -H 'X-Api-Key: k3y' http://db/ && echo ok"},
		{"curl", "-H", "Authorization: Bearer s3cret", "http://db/"},
		{"tool", "--password", "s3cret", "--token=t0k"},
		{"sh", "-c", "PGPASSWORD=s3cret psql 'postgresql://m:s3cret@db/wire?sslpassword=k3y'"},
		{"curl", "-u", "m:s3cret", "-d", `{"password":"s3cret"}`, "http://db/"},
		{"psql", "-c", "ALTER ROLE m PASSWORD 's3cret'"},
	} {
		shown := redactArgv(argv)
		if slices.Equal(shown, argv) {
			t.Errorf("%q: nothing hidden", argv)
			continue
		}
		if again := redactArgv(shown); !slices.Equal(again, shown) {
			t.Errorf("%q: shown as %q, and that as %q", argv, shown, again)
		}
		if sec := CommandSecrets(shown); len(sec) > 0 {
			t.Errorf("%q: shown as %q, whose secrets are %q", argv, shown, sec)
		}
	}
	// Redacted already: shown as it is.
	checkRedacted(t, []redactCase{
		{[]string{"curl", "-H", "Authorization: redacted x", "http://db/"}, nil},
		{[]string{"sh", "-c", "curl -H 'Authorization: redacted' -H 'Proxy-Authorization: Basic redacted' http://db/"}, nil},
		{[]string{"tool", "--password", "redacted", "PGPASSWORD=redacted"}, nil},
	})
}
