package txshim

import (
	"errors"
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
