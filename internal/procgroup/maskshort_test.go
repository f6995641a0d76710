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
