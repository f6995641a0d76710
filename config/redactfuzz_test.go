package config

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzRedactCommand feeds redactArgv and CommandSecrets (those written: writtenSecrets) an argv, the input split at its NULs
// (no argument holds one), and checks what must hold of any: neither panics; every argument
// is shown, once; the secrets, each not empty and written in the argv (but for what is
// hidden before them, in which they are read: a password's value in SQL's own, PASSWORD
// 'redacted', after pass="), are what is hidden;
// and redacting what is shown shows none of them again. A secret written once in the argv
// (and no "redacted" in it, which the shown text is made of too) is shown nowhere: what is
// shown is the argv with what it hides cut out, each cut "redacted". Redacting what is shown
// may hide more of it: "redacted" is a word too (Authorization: redacted x, redacted read as
// the scheme, x as the credential), so that it need not show it as it is.
func FuzzRedactCommand(f *testing.F) {
	for _, s := range []string{
		"psql\x00-d\x00postgresql://monitor:s3cret@db/wire?sslpassword=k3y&x=1",
		"sh\x00-c\x00PGPASSWORD=s3cret psql -h db; mysql -uroot -ps3cret; redis-cli -a s3cret ping",
		"sh\x00-c\x00psql --password -h db && mongosh -u admin -p --port 27017 && sshpass -p -s3cret ssh db",
		"curl\x00-u\x00admin:s3cret\x00-H\x00Authorization: Bearer t0ken\x00-d\x00{\"password\":\"s3cret\"}",
		"sh\x00-c\x00ssh db \"psql 'host=x password=it'\\''s' -c \\\"ALTER ROLE m PASSWORD 'pw'\\\"\"",
		"vault\x00login\x00--token\x00-\x00'--password' 's3cret' >/dev/null",
		"mysql\x00--password\x00-h\x00db\x00--api-key=$(cat /k) --client-secret \"$SECRET\"",
		"sh\x00-c\x00x?db_paſſword=1&api-key= é --Token\t'é' -pé; \\\"secret\\\" : \\\"v\\\" PASSWORD\n'x' ſ",
		"sh\x00-c\x00curl -H 'Authorization: Digest response=\"x\"' http://u:p/s@h:1/@x ftp+x://:@h psql/mongo-cli pg_x\tredis-cli\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv := strings.Split(s, "\x00")
		for _, a := range append([]string{strings.Join(argv, " ")}, argv...) {
			checkWindows(t, a)
		}
		shown := redactArgv(argv)
		if len(shown) != len(argv) {
			t.Fatalf("%q: shown as %d arguments, %q", argv, len(shown), shown)
		}
		again := redactArgv(shown)
		if len(again) != len(argv) {
			t.Fatalf("%q: shown as %q, and that as %q", argv, shown, again)
		}
		in, out := strings.Join(argv, "\x00"), strings.Join(shown, "\x00")
		secrets := writtenSecrets(argv)
		// CommandSecrets adds to them what a shell reads of them.
		for _, sec := range CommandSecrets(argv) {
			if !slices.Contains(secrets, sec) && !slices.ContainsFunc(secrets, func(w string) bool { return slices.Contains(shellReadings(w), sec) }) {
				t.Errorf("%q: CommandSecrets holds %q, neither written nor read of one written (%q)", argv, sec, secrets)
			}
		}
		if len(secrets) > 0 && slices.Equal(shown, argv) {
			t.Errorf("%q: shown as it is, secrets %q", argv, secrets)
		}
		if len(secrets) == 0 && !slices.Equal(shown, argv) {
			t.Errorf("%q: shown as %q, no secrets", argv, shown)
		}
		for _, sec := range secrets {
			switch {
			case sec == "":
				t.Errorf("%q: an empty secret among %q", argv, secrets)
			case !written(in, sec):
				t.Errorf("%q: secret %q not in it", argv, sec)
			case strings.Count(in, sec) > 1 || strings.Contains(in, "redacted"):
			case strings.Contains(strings.ReplaceAll(out, "redacted", "\x00"), sec):
				t.Errorf("%q: secret %q shown: %q", argv, sec, shown)
			case strings.Contains(strings.ReplaceAll(strings.Join(again, "\x00"), "redacted", "\x00"), sec):
				t.Errorf("%q: secret %q shown as %q, and that as %q", argv, sec, shown, again)
			}
		}
	})
}

// written tells whether secret is written in the text in, what it holds of the "redacted"
// shown for the secrets hidden before it aside.
func written(in, secret string) bool {
	for _, part := range strings.Split(secret, "redacted") {
		if !strings.Contains(in, part) {
			return false
		}
	}
	return true
}

// checkWindows requires the regexps read in a's windows alone (argPasswordWindows...) to find
// what they find reading all of it.
func checkWindows(t *testing.T, a string) {
	t.Helper()
	var want [][]int
	for off := 0; off < len(a); {
		m := argPasswordName.FindStringSubmatchIndex(a[off:])
		if m == nil {
			break
		}
		for k := range m {
			if m[k] >= 0 {
				m[k] += off
			}
		}
		want = append(want, m)
		switch {
		case m[10] >= 0:
			off = m[10]
		case m[16] >= 0:
			off = m[16]
		default:
			off = m[1]
		}
	}
	if got := argPasswordMatches(a); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("%q: argPasswordMatches %v, want %v", a, got, want)
	}
	for _, c := range []struct {
		re      *regexp.Regexp
		windows func(string) []window
	}{{argHeader, headerWindows}, {argSQLPassword, sqlWindows}, {argJSONSecret, jsonWindows}, {argURLPassword, urlWindows}} {
		if got, want := findAllIn(c.re, a, c.windows(a)), c.re.FindAllStringSubmatchIndex(a, -1); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%q: %v read in windows %v, all of it %v", a, c.re, got, want)
		}
	}
	for re, words := range argNameWords {
		if got, want := firstIn(re, a, nameWindows(a, words)), re.FindStringIndex(a); !slices.Equal(got, want) {
			t.Errorf("%q: %v read in windows %v, all of it %v", a, re, got, want)
		}
	}
}
