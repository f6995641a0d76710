package txshim

import (
	"database/sql"
	"testing"
)

// TestResyncSchemaUnderSettings: resync compares the application schemas before it copies,
// the local one read in the copy's session, whose settings are pinned (IntervalStyle iso_8601,
// …), the peer's through a plain connection under its database's own settings. A CHECK
// constraint or a partition bound holding a constant is printed after them: with IntervalStyle
// sql_standard on both databases (the same schema, the same settings), or sites whose servers
// keep the time of their own zones, the two read differently and resync refused a peer whose
// schema is the master's.
func TestResyncSchemaUnderSettings(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `ALTER DATABASE app SET intervalstyle = 'sql_standard'`,
		`CREATE TABLE ev (id int PRIMARY KEY, d interval CHECK (d < '1 day 02:00:00'))`,
		`INSERT INTO ev VALUES (1, '1 hour')`)
	sh := syncedShipper(t, p)
	// Made after install, which reads both databases in their own zones.
	for db, zone := range map[*sql.DB]string{p.ldb: "Europe/Berlin", p.pdb: "America/New_York"} {
		if _, err := db.Exec(`ALTER DATABASE app SET timezone = '` + zone + `'`); err != nil {
			t.Fatal(err)
		}
	}
	p.both(t, `CREATE TABLE log (at timestamptz PRIMARY KEY) PARTITION BY RANGE (at)`,
		`CREATE TABLE log_2024 PARTITION OF log FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00')`)
	requireSame(t, p)
	resyncDiverged(t, p, sh, `DELETE FROM ev WHERE id = 1`, `UPDATE ev SET d = '2 hours' WHERE id = 1`)
}
