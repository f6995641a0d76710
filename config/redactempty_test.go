package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandEmptyValueShown: an empty value is no secret, and is shown as it is:
// after an open quote at a script's end (--password "), and a URL's empty password
// (postgresql://monitor:@db) read "redacted", where nothing was hidden (found by
// FuzzRedactCommand).
func TestRedactedCommandEmptyValueShown(t *testing.T) {
	for _, argv := range [][]string{
		{"sh", "-c", `tool --password "`},
		{"sh", "-c", `tool '--password' '`},
		{"psql", "-d", "postgresql://monitor:@db/wire"},
	} {
		if got := redactArgv(argv); !slices.Equal(got, argv) {
			t.Errorf("%q: shown as %q", argv, got)
		}
		if sec := CommandSecrets(argv); len(sec) > 0 {
			t.Errorf("%q: secrets %q", argv, sec)
		}
	}
}
