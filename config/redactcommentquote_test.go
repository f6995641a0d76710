package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandPgpassCommentMisread: a '#' that uncommented takes for a comment's start
// though it is none, the password file named after it on its line: the script was no longer
// one that writes a password file, and its line's password was shown in check-config and no
// secret to mask in the output's log. uncommented follows quotes as a shell does, but not
// all that a shell reads: an apostrophe in a here-document's body (it's) or in a quote in a
// $(...) in a quote ("$(echo "it's")") made it read the quotes after it the other way round,
// and a backquoted command or a ${...} holds a '#' after a space that is no comment where
// they are (`date #x`, ${v%% #*}).
func TestRedactedCommandPgpassCommentMisread(t *testing.T) {
	for _, tc := range []struct{ why, script, shown, secret string }{
		{"here-document's apostrophe", "cat <<EOF\nit's done\nEOF\necho 'db:5432:*:m:s3 #1' > ~/.pgpass",
			"cat <<EOF\nit's done\nEOF\necho 'db:5432:*:m:redacted' > ~/.pgpass", "s3 #1"},
		{"quote in $(...) in a quote", "msg=\"$(echo \"it's\")\"\necho 'db:5432:*:m:s3 #1' > ~/.pgpass",
			"msg=\"$(echo \"it's\")\"\necho 'db:5432:*:m:redacted' > ~/.pgpass", "s3 #1"},
		{"backquotes", "echo db:5432:*:m:s3#1 `: #x` > ~/.pgpass",
			"echo db:5432:*:m:redacted `: #x` > ~/.pgpass", "s3#1"},
		{"${...}", "echo db:5432:*:m:s3#1 ${v%% #*} > ~/.pgpass",
			"echo db:5432:*:m:redacted ${v%% #*} > ~/.pgpass", "s3#1"},
	} {
		argv := []string{"sh", "-c", tc.script}
		if got := redactArgv(argv)[2]; got != tc.shown {
			t.Errorf("%s: %q shown as %q, want %q", tc.why, tc.script, got, tc.shown)
		}
		if got := CommandSecrets(argv); !slices.Equal(got, []string{tc.secret}) {
			t.Errorf("%s: %q: secrets %q, want %q", tc.why, tc.script, got, tc.secret)
		}
	}
	// A comment naming a password file is still none the script writes, a quote in it or not.
	for _, script := range []string{
		"# no passfile: PGPASSWORD is set\necho \"db1:5432:wire:monitor:up since $(date)\"",
		"psql -c 'select 1' # reads ~/.pgpass\necho db1:5432:wire:monitor:up",
	} {
		argv := []string{"sh", "-c", script}
		if got := redactArgv(argv)[2]; got != script {
			t.Errorf("%q shown as %q", script, got)
		}
		if got := CommandSecrets(argv); got != nil {
			t.Errorf("%q: secrets %q", script, got)
		}
	}
}
