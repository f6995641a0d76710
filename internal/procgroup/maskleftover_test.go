package procgroup

import "testing"

// TestMaskSecretShortLeftovers: secrets shorter than minMaskLen bytes, in forms of a value
// config.CommandSecrets reads them in, that their command's output log showed.
func TestMaskSecretShortLeftovers(t *testing.T) {
	for _, tc := range []struct{ why, s, pw, want string }{
		// SQL's Unicode escape string after PASSWORD (psql's echo, set -x's trace).
		{"U&", "ALTER ROLE m PASSWORD U&'ab';\n", "ab", "ALTER ROLE m PASSWORD U&'<redacted>';\n"},
		{"u& traced", `+ psql -c 'alter role m password u&'\''ab'\'''` + "\n", "ab", `+ psql -c 'alter role m password u&'\''<redacted>'\'''` + "\n"},
		{"U& not a value", "PASSWORD U&'abc' PASSWORD U& 'ab' PASSWORD xU&'ab'", "ab", "PASSWORD U&'abc' PASSWORD U& 'ab' PASSWORD xU&'ab'"},
		// A JSON member's string in a JSON string in a JSON string (a JSON log line holding
		// the command it ran), its quotes escaped twice.
		{"JSON twice", `{"cmd":"curl -d \"{\\\"password\\\":\\\"ab\\\"}\""}`, "ab", `{"cmd":"curl -d \"{\\\"password\\\":\\\"<redacted>\\\"}\""}`},
		{"JSON twice not a value", `\\\"password\\\":\\\"abc\\\" \\\"x\\\":\\\"ab\\n\\\"`, "ab", `\\\"password\\\":\\\"abc\\\" \\\"x\\\":\\\"ab\\n\\\"`},
	} {
		if got := MaskSecret(tc.s, tc.pw, "<redacted>", false); got != tc.want {
			t.Errorf("%s: %q masked in %q: %q, want %q", tc.why, tc.pw, tc.s, got, tc.want)
		}
	}
}
