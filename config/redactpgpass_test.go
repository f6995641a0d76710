package config

import (
	"slices"
	"testing"
)

// TestRedactedCommandPgpassNewlineEscape: a password file's line written with printf or echo
// -e ends with \n, a newline they write: its password was taken to run to the quote, \n and
// the lines after it within the quote too, so that CommandSecrets gave "s3cret\n" (and
// "s3cretn"), which the file's content, cat'ed into the output's log, does not hold, and the
// password was shown there; the lines after the first, their passwords each a part of that
// one, too. Each password ends at the \n, the next line starting after it.
func TestRedactedCommandPgpassNewlineEscape(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"sh", "-c", `printf 'db:5432:*:monitor:s3cret\n' > ~/.pgpass`}, []string{"sh", "-c", `printf 'db:5432:*:monitor:redacted\n' > ~/.pgpass`}},
		{[]string{"sh", "-c", `echo -e "db:5432:*:monitor:s3cret\nbk:5432:*:monitor:pa ss-2\n" >> ~/.pgpass`}, []string{"sh", "-c", `echo -e "db:5432:*:monitor:redacted\nbk:5432:*:monitor:redacted\n" >> ~/.pgpass`}},
	})
	for _, tc := range []struct {
		script string
		want   []string
	}{
		{`printf 'db:5432:*:monitor:s3cret\n' > ~/.pgpass`, []string{"s3cret"}},
		{`echo -e "db:5432:*:monitor:s3cret\nbk:5432:*:monitor:pa ss-2\n" >> ~/.pgpass`, []string{"pa ss-2", "s3cret"}},
	} {
		if got := CommandSecrets([]string{"sh", "-c", tc.script}); !slices.Equal(got, tc.want) {
			t.Errorf("%q: secrets %q, want %q", tc.script, got, tc.want)
		}
	}
}
