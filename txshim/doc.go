// Package txshim is a PostgreSQL-wire shim that commits each write transaction on both sites' databases or on neither.
package txshim
