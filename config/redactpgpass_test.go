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

// TestRedactedCommandPasswordFileNamed: a password file named by a connection string's
// passfile (psql "passfile=/etc/tandem/mon.pass"), libpq's other way to name one than
// $PGPASSFILE, was no password file to the redaction: its lines, which the script writes, were
// shown, their passwords too, in check-config and in the output's log.
func TestRedactedCommandPasswordFileNamed(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"sh", "-c", `echo 'db:5432:*:monitor:s3cret' > /etc/tandem/mon.pass; psql "passfile=/etc/tandem/mon.pass host=db"`},
			[]string{"sh", "-c", `echo 'db:5432:*:monitor:redacted' > /etc/tandem/mon.pass; psql "passfile=/etc/tandem/mon.pass host=db"`}},
		{[]string{"sh", "-c", `echo db:5432:*:monitor:s3cret > mon.pass`, "psql", "postgresql://db/wire?passfile=mon.pass"},
			[]string{"sh", "-c", `echo db:5432:*:monitor:redacted > mon.pass`, "psql", "postgresql://db/wire?passfile=mon.pass"}},
	})
}

// TestRedactedCommandPgpassHeredoc: a password file's line a script writes as a line of its
// own (a here-document's: cat > ~/.pgpass <<EOF) had its password taken to end at a space or
// a quote, as a word's does, though the file's line runs to its end: of "my s3'cret", "my" was
// hidden and " s3'cret" shown, in check-config and in the output's log. On a line of its own,
// the password runs to the line's end.
func TestRedactedCommandPgpassHeredoc(t *testing.T) {
	checkRedacted(t, []redactCase{
		{[]string{"sh", "-c", "cat > ~/.pgpass <<'EOF'\ndb:5432:*:monitor:my s3'cret\n\tbk:5432:*:monitor:pa\"ss 2\nEOF\npsql -h db"},
			[]string{"sh", "-c", "cat > ~/.pgpass <<'EOF'\ndb:5432:*:monitor:redacted\n\tbk:5432:*:monitor:redacted\nEOF\npsql -h db"}},
	})
	if got, want := CommandSecrets([]string{"sh", "-c", "cat > ~/.pgpass <<'EOF'\ndb:5432:*:monitor:my s3'cret\nEOF"}), []string{"my s3'cret"}; !slices.Equal(got, want) {
		t.Errorf("secrets %q, want %q", got, want)
	}
}

// TestRedactedCommandPgpassLineNotHeredoc: a password file's line at a line's start that is no
// here-document's (a word after a line continuation, a quote's next line) had its password
// taken to the line's end as a here-document's is (pgpassOwnLine), the redirection and quote
// after it too: CommandSecrets gave "s3cret > ~/.pgpass", which the file does not hold, and a
// script that cat'ed the file showed s3cret in its output's log. It ends as a word's does.
func TestRedactedCommandPgpassLineNotHeredoc(t *testing.T) {
	for _, c := range []struct {
		script string
		want   []string
	}{
		{"printf '%s\\n' \\\n  db:5432:*:m:s3cret > ~/.pgpass\npsql -h db", []string{"s3cret"}},
		{"printf '%s\\n' '\ndb:5432:*:m:s3cret' > ~/.pgpass", []string{"s3cret"}},
		{"echo \"\ndb:5432:*:m:s3cret\" > ~/.pgpass", []string{"s3cret"}},
		// A here-document's, and one after a here-document's end: to the line's end and a word's.
		{"cat > ~/.pgpass <<-'EOF'\n\tdb:5432:*:m:my s3cret\n\tEOF\necho \\\n bk:5432:*:m:x2 > ~/.pgpass", []string{"my s3cret", "x2"}},
	} {
		if got := CommandSecrets([]string{"sh", "-c", c.script}); !slices.Equal(got, c.want) {
			t.Errorf("%q: secrets %q, want %q", c.script, got, c.want)
		}
	}
}
