package txshim

import (
	"context"
	"testing"
	"time"
)

// TestInstallAgainWithPreparedApply: install run again (after an upgrade: the running sidecar
// asks for it, InstallStateOf) on databases that are set up already must not wait for
// transactions prepared on them. A dual commit's applied copy, prepared on the peer, holds its
// decision row's lock on tandem.decisions, and a DDL transaction prepared on either database
// its tandem.ddl row's, until it is committed — for as long as it stays in doubt. Install's
// ALTER TABLE … ADD COLUMN IF NOT EXISTS and CREATE INDEX IF NOT EXISTS on those tables locked
// them (ACCESS EXCLUSIVE, SHARE) whether or not there was anything to add: it waited without end,
// and every apply and every DDL through the shim queued behind it.
func TestInstallAgainWithPreparedApply(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	// What an earlier version lacked is still added.
	p.local.Exec(t, `ALTER TABLE tandem.decisions DROP COLUMN lsn; DROP INDEX tandem.decisions_at; ALTER TABLE tandem.ddl DROP COLUMN timezone_abbreviations, DROP COLUMN search_path`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_attribute WHERE NOT attisdropped AND
  ((attrelid = 'tandem.decisions'::regclass AND attname = 'lsn') OR (attrelid = 'tandem.ddl'::regclass AND attname IN ('timezone_abbreviations', 'search_path')))`); n != 3 {
		t.Errorf("install of an earlier version's schema: %d of the 3 dropped columns back", n)
	}
	if !queryOne[bool](t, p.ldb, `SELECT to_regclass('tandem.decisions_at') IS NOT NULL`) {
		t.Error("install of an earlier version's schema: index tandem.decisions_at not made")
	}
	if d := queryOne[string](t, p.ldb, `SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'tandem.ddl'::regclass
  AND adnum = (SELECT attnum FROM pg_attribute WHERE attrelid = 'tandem.ddl'::regclass AND attname = 'search_path')`); d != "tandem.ddl_search_path()" {
		t.Errorf("default of tandem.ddl.search_path = %q", d)
	}
	// An applied copy prepared on the peer (its decision row), a DDL transaction prepared on the
	// local database (its tandem.ddl row).
	p.peer.Exec(t, `BEGIN; INSERT INTO t VALUES (1); INSERT INTO tandem.decisions (gid) VALUES ('tandem_site1_1_900'); PREPARE TRANSACTION 'tandem_site1_1_900'`)
	p.local.Exec(t, `BEGIN; INSERT INTO tandem.ddl (stmt) VALUES ('SELECT 1'); PREPARE TRANSACTION 'tandem_site1_1_901'`)
	t.Cleanup(func() {
		p.peer.Exec(t, `ROLLBACK PREPARED 'tandem_site1_1_900'`)
		p.local.Exec(t, `ROLLBACK PREPARED 'tandem_site1_1_901'`)
	})
	ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := Install(ictx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install run again beside prepared transactions: %v", err)
	}
}
