package txshim

import (
	"errors"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-ha/tandem/config"
)

// parseDSN is pgconn.ParseConfig, for a connection string read again at each connect (the
// files it names are opened then: a certificate being replaced may be gone), with an error
// that shows the string as config.RedactDSN hides its password: pgconn's own error hides it
// only as far as its patterns go ("password = secret", spaces around '=' as libpq takes them,
// or a quoted password holding \' were shown as written).
func parseDSN(dsn string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	var pe *pgconn.ParseConfigError
	if err == nil || !errors.As(err, &pe) {
		return cfg, err
	}
	// pgconn's text is "cannot parse `DSN`: what (cause)": only what follows the string is kept.
	what := "cannot be read"
	if text := pe.Error(); strings.Contains(text, "`: ") {
		what = text[strings.LastIndex(text, "`: ")+3:]
	}
	return nil, &dsnError{text: "cannot parse `" + config.RedactDSN(dsn) + "`: " + what, cause: errors.Unwrap(pe)}
}

// dsnError is parseDSN's error: its text, and pgconn's cause (errors.Is finds fs.ErrNotExist).
type dsnError struct {
	text  string
	cause error
}

func (e *dsnError) Error() string { return e.text }
func (e *dsnError) Unwrap() error { return e.cause }

// pqConfigError is lib/pq's error on reading a connection string (pq.NewConfig) without what it
// quotes: a line of the service file the string names, which lib/pq reads at each OpenDB (an
// operator's edit while the sidecar runs — "password s3cret", no '=' — failed every control
// connection with the line in the log), or the words of the string before a missing '=' (the
// rest of an unquoted password holding a space).
func pqConfigError(err error) error {
	text := pqServiceLine.ReplaceAllString(err.Error(), "$1 (the line is not shown: it may hold a password)")
	text = pqMissingEquals.ReplaceAllString(text, `missing "=" after a word of the connection string (not shown: it may be part of a password)`)
	if text == err.Error() {
		return err
	}
	return &dsnError{text: text}
}

var (
	pqServiceLine   = regexp.MustCompile(`(line \d+: (?:missing '='|no value before '=')) in "(?:[^"\\]|\\.)*"`)
	pqMissingEquals = regexp.MustCompile(`missing "=" after "(?:[^"\\]|\\.)*" in connection info string`)
)
