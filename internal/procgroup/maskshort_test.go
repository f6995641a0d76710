package procgroup

import "testing"

// TestMaskSecretShortSQLPassword: a secret shorter than minMaskLen bytes written as SQL's
// PASSWORD '...' (psql -c "ALTER ROLE m PASSWORD 'ab'", which config.CommandSecrets reads it
// in) was shown in its output's log: psql's echo writes it as PASSWORD 'ab', bash's set -x
// with each quote closing, escaped and opening its quoted word again, neither a value after
// '=' or ':' or an option. It is masked there.
func TestMaskSecretShortSQLPassword(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{`+ psql -c 'ALTER ROLE m PASSWORD '\''ab'\'''` + "\n", "ab", `+ psql -c 'ALTER ROLE m PASSWORD '\''<redacted>'\'''` + "\n"},
		{"ALTER ROLE m PASSWORD 'ab';\n", "ab", "ALTER ROLE m PASSWORD '<redacted>';\n"},
		{"create role m login password\t'a'\n", "a", "create role m login password\t'<redacted>'\n"},
		// Not as a value: shown.
		{"PASSWORD 'abc' password ab xpassword 'ab'", "ab", "PASSWORD 'abc' password ab xpassword 'ab'"},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}

// TestMaskSecretShortAuthorization: a secret shorter than minMaskLen bytes written as an
// Authorization header's credential after its scheme (curl -H 'Authorization: Bearer ab',
// which config.CommandSecrets reads it in) was shown in its output's log, as set -x traces it
// and curl -v writes it: it stands after the scheme, not right after the ':'.
func TestMaskSecretShortAuthorization(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{"+ curl -H 'Authorization: Bearer ab' http://db/\n", "ab", "+ curl -H 'Authorization: Bearer <redacted>' http://db/\n"},
		{"> authorization:basic\tab\r\n", "ab", "> authorization:basic\t<redacted>\r\n"},
		{"+ curl -H 'Proxy-Authorization: Token a' http://db/", "a", "+ curl -H 'Proxy-Authorization: Token <redacted>' http://db/"},
		// Not as a value: shown.
		{"Authorization: Bearer abc; Bearer ab", "ab", "Authorization: Bearer abc; Bearer ab"},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}

// TestMaskSecretShortEscapedJSON: a secret shorter than minMaskLen bytes written as a JSON
// member's value in a string of its own ("{\"password\":\"x\"}", as a script echoes it and set
// -x traces it, or as a JSON log line holds it) was shown in its output's log: a value after
// ':' was one in no quote or in a quote, not in an escaped one.
func TestMaskSecretShortEscapedJSON(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{`+ echo '{\"password\":\"x\"}'` + "\n" + `{\"password\":\"x\"}` + "\n", "x",
			`+ echo '{\"password\":\"<redacted>\"}'` + "\n" + `{\"password\":\"<redacted>\"}` + "\n"},
		{`{"msg":"sent {\"user\": \"m\", \"token\": \"ab\"}"}`, "ab", `{"msg":"sent {\"user\": \"m\", \"token\": \"<redacted>\"}"}`},
		{`level=info msg="login password=\"ab\""`, "ab", `level=info msg="login password=\"<redacted>\""`},
		// Not as a value: shown.
		{`{\"password\":\"abc\"} {\"x\":\"ab\\n\"} C:\ab`, "ab", `{\"password\":\"abc\"} {\"x\":\"ab\\n\"} C:\ab`},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}

// TestMaskSecretShortSQLEscapeString: a secret shorter than minMaskLen bytes written as SQL's
// PASSWORD E'...' (an escape string constant, psql -c "ALTER ROLE m PASSWORD E'ab'") was
// shown in its output's log: SQL's PASSWORD was one before a quote only, not before E and it.
func TestMaskSecretShortSQLEscapeString(t *testing.T) {
	for _, tc := range []struct{ s, pw, want string }{
		{"ALTER ROLE m PASSWORD E'ab';\n", "ab", "ALTER ROLE m PASSWORD E'<redacted>';\n"},
		{`+ psql -c 'ALTER ROLE m password e'\''ab'\'''` + "\n", "ab", `+ psql -c 'ALTER ROLE m password e'\''<redacted>'\'''` + "\n"},
		// Not as a value: shown.
		{"PASSWORD Ex'ab' PASSWORD E'abc'", "ab", "PASSWORD Ex'ab' PASSWORD E'abc'"},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%q masked in %q: %q, want %q", tc.pw, tc.s, got, tc.want)
		}
	}
}
