package txshim

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestInstallUpgradeBesidePreparedDDL: install run after an upgrade adds the tandem.ddl columns
// an earlier version lacked (ALTER TABLE, ACCESS EXCLUSIVE). A DDL transaction prepared on the
// database (in doubt: its tandem.ddl row) holds that table for as long as it stays so: install
// waited without end, and every DDL through the shim, and every apply of one on the peer,
// queued behind its lock request. It must give up soon and say why.
func TestInstallUpgradeBesidePreparedDDL(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := capCtx(t, 90*time.Second)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	// An earlier version's tandem.ddl, with rows, one of them prepared.
	p.both(t, `ALTER TABLE tandem.ddl DROP COLUMN xmlbinary, DROP COLUMN role`, `INSERT INTO tandem.ddl (stmt) VALUES ('SELECT 1')`)
	p.local.Exec(t, `BEGIN; INSERT INTO tandem.ddl (stmt) VALUES ('SELECT 2'); PREPARE TRANSACTION 'tandem_site1_1_901'`)
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	err := Install(ictx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	took := time.Since(start)
	t.Logf("install: %v", err)
	// Meanwhile DDL through the shim on the database had waited too; it goes on now.
	p.local.Exec(t, `INSERT INTO tandem.ddl (stmt) VALUES ('SELECT 3')`)
	if err == nil || took > 20*time.Second || !strings.Contains(err.Error(), "prepared") {
		t.Errorf("install beside a prepared DDL transaction: after %s: %v; want a prompt error naming the prepared transaction", took.Round(time.Second), err)
	}
	p.local.Exec(t, `COMMIT PREPARED 'tandem_site1_1_901'`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("install once it is finished: %v", err)
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'tandem.ddl'::regclass AND attname IN ('xmlbinary', 'role') AND NOT attisdropped`); n != 2 {
		t.Errorf("%d of the 2 columns added", n)
	}
}
