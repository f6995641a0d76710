package config

import "testing"

// TestRedactWindowsRuneBefore: the regexps read in windows find what they find reading all of
// the text though a character of more than one byte stands right before the word a window is
// around (SQL's PASSWORD after an é or a no-break space): the window started at its last byte,
// which the regexp read as a character of its own, so that the match started a byte later
// than reading all of it has it start (FuzzRedactCommand's check).
func TestRedactWindowsRuneBefore(t *testing.T) {
	for _, a := range []string{
		"épassword 'x'",
		"psql -c \"ALTER ROLE m\u00a0PASSWORD 'x'\"",
		"ALTER ROLE m \u20acpassword\t'x' \U0001F511password 'y'",
		"\xa9password 'x' \xe2\x82password 'y'",
	} {
		checkWindows(t, a)
	}
}
