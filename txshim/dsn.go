package txshim

import (
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-ha/tandem/config"
)

// parseDSN is pgconn.ParseConfig, for a connection string read again at each connect (the
// files it names are opened then: a certificate being replaced may be gone), with an error
// that shows the string as config.RedactDSN hides its password (config.RedactDSNError):
// pgconn's own error hides it only as far as its patterns go ("password = secret", spaces
// around '=' as libpq takes them, or a quoted password holding \' were shown as written).
func parseDSN(dsn string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	return cfg, config.RedactDSNError(dsn, err)
}
