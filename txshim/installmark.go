package txshim

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// A database set up by an earlier version of Install lacks what later versions add to it
// (event triggers, functions, columns), and nothing failed when the binary was upgraded: the
// shim simply runs without them. So Install ends by writing a mark of what it installed into
// tandem.installed, and a running sidecar compares it with its own (InstallStateOf) and says
// when `tandem install` is to be run again. The mark is a digest of the SQL Install runs for
// its objects (schemaSQL, ddlGuardSQL), so a release that changes them changes it without
// anyone keeping a version number by hand; one that changes only a comment inside them asks
// for an install that changes nothing, which is harmless.

// installedSQL makes the table of the mark: one row, written last by Install.
const installedSQL = `CREATE TABLE IF NOT EXISTS tandem.installed (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  mark text NOT NULL, at timestamptz NOT NULL DEFAULT now())`

// installMark is this version's mark.
var installMark = func() string {
	sum := sha256.Sum256([]byte(schemaSQL + "\x00" + ddlGuardSQL + "\x00" + installedSQL))
	return hex.EncodeToString(sum[:8])
}()

// InstallState is what InstallStateOf found in a database.
type InstallState string

const (
	InstallCurrent  InstallState = "current"  // set up by an Install of this version
	InstallOutdated InstallState = "outdated" // set up by an Install of another version
	InstallMissing  InstallState = "missing"  // never set up: no tandem schema
)

// writeInstallMark records that Install of this version set up db's objects.
func writeInstallMark(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, installedSQL); err != nil {
		return fmt.Errorf("create tandem.installed: %w", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO tandem.installed (id, mark) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET mark = EXCLUDED.mark, at = now()`, installMark); err != nil {
		return fmt.Errorf("record the install in tandem.installed: %w", err)
	}
	return nil
}

// InstallStateOf tells whether db was set up by Install of this version (the mark in
// tandem.installed), of another one (a different mark, or a tandem schema without the table:
// versions before the mark), or not at all.
func InstallStateOf(ctx context.Context, db *sql.DB) (InstallState, error) {
	var schema, table bool
	if err := db.QueryRowContext(ctx, `SELECT to_regnamespace('tandem') IS NOT NULL, to_regclass('tandem.installed') IS NOT NULL`).
		Scan(&schema, &table); err != nil {
		return "", fmt.Errorf("read the install mark: %w", err)
	}
	if !schema {
		return InstallMissing, nil
	}
	if !table {
		return InstallOutdated, nil
	}
	var mark string
	switch err := db.QueryRowContext(ctx, `SELECT mark FROM tandem.installed WHERE id = 1`).Scan(&mark); {
	case errors.Is(err, sql.ErrNoRows):
		return InstallOutdated, nil
	case err != nil:
		return "", fmt.Errorf("read the install mark: %w", err)
	case mark != installMark:
		return InstallOutdated, nil
	}
	return InstallCurrent, nil
}
