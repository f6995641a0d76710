package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// RedactDSNError is err, a database client's error on reading or using dsn, with a text that
// shows nothing of dsn's password, for a log line or a message; errors.Is and errors.As see err
// as it is. The clients' errors quote the string, or a piece of it: net/url's (through lib/pq)
// the whole URL, and for a password holding an unencoded '/' a piece of the password as the
// port; pgconn's the string with the password hidden only as far as its patterns go; lib/pq's
// the word before a missing '=' (the rest of an unquoted password with a space) and a line of
// the service file without one ("password s3cret"). Each is shown as RedactDSN hides it, or not
// at all. err itself is returned when there is nothing to hide; nil for nil.
func RedactDSNError(dsn string, err error) error {
	if err == nil {
		return nil
	}
	orig := err.Error()
	text := orig
	var pe *pgconn.ParseConfigError
	var ue *url.Error
	switch {
	case errors.As(err, &pe):
		// "cannot parse `DSN`: what (cause)": pgconn's words after the string are kept.
		pt := pe.Error()
		what := "cannot be read"
		if i := strings.LastIndex(pt, "`: "); i >= 0 {
			what = pt[i+3:]
		}
		text = strings.Replace(text, pt, "cannot parse `"+RedactDSN(pe.ConnString)+"`: "+what, 1)
	case errors.As(err, &ue):
		// net/url's reason may quote a piece of the password (invalid port ":s3c" after host):
		// kept only for a URL with nothing to hide. It quotes the URL up to its first '#' only:
		// for a password holding one, the user and the password's start, where RedactDSN finds
		// nothing to hide (no '@'); dsn is hidden whole then (TestRedactDSNErrorURLCutAtHash).
		shown := ue.URL
		if ue.URL != dsn && strings.HasPrefix(dsn, ue.URL+"#") {
			shown = dsn
		}
		if red := RedactDSN(shown); red != ue.URL {
			text = strings.Replace(text, ue.Error(), fmt.Sprintf("%s %q: not a valid URL: %s", ue.Op, red, urlHint), 1)
		}
	}
	if red := RedactDSN(dsn); dsn != "" && !strings.Contains(red, dsn) {
		text = strings.ReplaceAll(text, strconv.Quote(dsn), strconv.Quote(red))
		text = strings.ReplaceAll(text, dsn, red)
	}
	text = pqServiceLine.ReplaceAllString(text, "$1 (the line is not shown: it may hold a password)")
	text = pqMissingEquals.ReplaceAllString(text, `missing "=" after a word of the connection string (not shown: it may be part of a password)`)
	if text == orig {
		return err
	}
	return &redactedError{text: text, err: err}
}

// lib/pq's errors quoting a line of the service file, or a word of the string.
var (
	pqServiceLine   = regexp.MustCompile(`(line \d+: (?:missing '='|no value before '=')) in "(?:[^"\\]|\\.)*"`)
	pqMissingEquals = regexp.MustCompile(`missing "=" after "(?:[^"\\]|\\.)*" in connection info string`)
)

// redactedError is RedactDSNError's error: its text, and the client's error it stands for.
type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }
