package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandPgpassArgvHash: an argument of a command run without a shell that
// starts with a '#' (--channel '#ops') is no comment, but writesPgpass read the arguments
// joined by spaces without their comments (uncommented), taking all after it for one: a
// password file named in a later argument was not seen, and the password file's line in
// another was shown in check-config, no secret to mask in the output's log. Each argument
// is read for a password file on its own, a comment in it ending at its end.
func TestRedactedCommandPgpassArgvHash(t *testing.T) {
	argv := []string{"/usr/local/bin/setup", "--channel", "#ops", "--line", "db:5432:*:m:s3cret", "--out", "/var/lib/m/.pgpass"}
	want := []string{"/usr/local/bin/setup", "--channel", "#ops", "--line", "db:5432:*:m:redacted", "--out", "/var/lib/m/.pgpass"}
	if got := redactArgv(argv); !slices.Equal(got, want) {
		t.Errorf("%q shown as %q, want %q", argv, got, want)
	}
	if got := CommandSecrets(argv); !slices.Equal(got, []string{"s3cret"}) {
		t.Errorf("%q: secrets %q, want [s3cret]", argv, got)
	}
	// A script's comment naming one is still none it writes (TestRedactedCommandLeftovers).
	argv = []string{"sh", "-c", "# no passfile\necho db1:5432:wire:monitor:up", "x"}
	if got := redactArgv(argv); !slices.Equal(got, argv) || CommandSecrets(argv) != nil {
		t.Errorf("%q shown as %q, secrets %q", argv, got, CommandSecrets(argv))
	}
}
