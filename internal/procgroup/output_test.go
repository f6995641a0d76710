package procgroup

import "testing"

// TestMaskSecretShort: a secret shorter than minMaskLen bytes (a 1-character password) was
// masked wherever its characters stood, so that every 'x' of the log read <redacted>; it is
// masked only where it stands as a value: after '=' or ':' (key=value, --password=x, a URL's
// user:x@), or as the word after an option (--password x, -p 'x'), ending a word there. A longer
// one is masked wherever it stands, as before.
func TestMaskSecretShort(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{"+ tool --password x\nexit x-ray 0x10 xx\n", "x",
			"+ tool --password <redacted>\nexit x-ray 0x10 xx\n"},
		{"password=x host=db url postgres://m:x@db/wire PGPASSWORD='x' -p 'x'; x=1", "x",
			"password=<redacted> host=db url postgres://m:<redacted>@db/wire PGPASSWORD='<redacted>' -p '<redacted>'; x=1"},
		{"+ tool --token 'a'\\''b'\nab a'b", "a'b",
			"+ tool --token '<redacted>'\nab a'b"},
		{"exit 1 after 1s: --password 1", "1", "exit 1 after 1s: --password <redacted>"},
		// Long enough: masked wherever it stands.
		{"xs3cretx s3cret", "s3cret", "x<redacted>x <redacted>"},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
	o := Output{Max: 100}
	o.Write([]byte("+ sshpass -p x ssh -x db\nexit\n"))
	if got, want := o.Masked("x"), "+ sshpass -p <redacted> ssh -x db\nexit\n"; got != want {
		t.Errorf("masked as %q, want %q", got, want)
	}
}

// TestMaskSecretEscaped: a secret holding a quote or a backslash is masked where the output
// writes it with a backslash before each (+ curl -u 'user:pa\'ss', a JSON or Go-quoted
// "pa\"ss\\x"): it was masked only as it stands and as bash's set -x quotes it.
func TestMaskSecretEscaped(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{`+ curl -u 'user:pa\'ss-1' http://db/`, `pa'ss-1`, `+ curl -u 'user:<redacted>' http://db/`},
		{`{"password":"pa\"ss\\x-2"} "pa\"ss\\x-2"`, `pa"ss\x-2`, `{"password":"<redacted>"} "<redacted>"`},
		{`level=error msg="login as m with \"s3\\\"cret\""`, `s3\"cret`, `level=error msg="login as m with \"<redacted>\""`},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}

// TestMaskedMasksOnce: what one secret's masking wrote is not masked again by another's:
// a secret that is part of a mask (acted, of <redacted>; PASSWORD, of <PGPASSWORD>) made
// "<red<redacted>>" of it.
func TestMaskedMasksOnce(t *testing.T) {
	t.Setenv("PGPASSWORD", "pg-s3cret")
	o := Output{Max: 100}
	o.Write([]byte("+ login pg-s3cret s3cret-2 acted PASSWORD\n"))
	if got, want := o.Masked("s3cret-2", "acted", "PASSWORD"), "+ login <PGPASSWORD> <redacted> <redacted> <redacted>\n"; got != want {
		t.Errorf("masked as %q, want %q", got, want)
	}
}

// TestMaskSecretShortValueForms: a secret shorter than minMaskLen bytes is masked where it
// stands as a value in the forms its command wrote it, which config.CommandSecrets reads it
// in: a MySQL client's and sshpass's -p glued to it (mysql -pab, as bash's set -x traces it),
// and after a ':' and spaces (a JSON member's "password": "ab", YAML's password: ab, a
// header's X-Api-Key: ab). Those were shown: a value was one right after '=' or ':' only.
func TestMaskSecretShortValueForms(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{"+ mysql -uroot -pab -e 'select 1'\n", "ab", "+ mysql -uroot -p<redacted> -e 'select 1'\n"},
		{"+ sshpass -pab ssh db true\n", "ab", "+ sshpass -p<redacted> ssh db true\n"},
		{"+ mysql '-pa b' -e x\n", "a b", "+ mysql '-p<redacted>' -e x\n"},
		{`+ curl -d '{"password": "ab"}' http://db/`, "ab", `+ curl -d '{"password": "<redacted>"}' http://db/`},
		{"password: ab\nuser:\tab\n", "ab", "password: <redacted>\nuser:\t<redacted>\n"},
		{"+ curl -H 'X-Api-Key: ab' http://db/", "ab", "+ curl -H 'X-Api-Key: <redacted>' http://db/"},
		// Not as a value: shown.
		{"+ ssh -p22 db; -pabc; x-pab; about: abc", "ab", "+ ssh -p22 db; -pabc; x-pab; about: abc"},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}

// TestMaskSecretEscapedMixedQuotes: a secret holding a single quote and a double quote or a
// backslash is masked as a JSON string and Go's %q write it, a backslash before each double
// quote and backslash but none before the single quote: only the form with one before that
// too was masked, and such a log line showed the secret.
func TestMaskSecretEscapedMixedQuotes(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{`{"password":"it's\\x-1"}`, `it's\x-1`, `{"password":"<redacted>"}`},
		{`msg="login with \"it's-2\""`, `"it's-2"`, `msg="login with <redacted>"`},
		{`+ tool --password 'it'\''s\x-3'` + "\n" + `"it\'s\\x-3"`, `it's\x-3`, "+ tool --password '<redacted>'\n\"<redacted>\""},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}
