package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSubscriptionDDLExempt: CREATE, ALTER and DROP SUBSCRIPTION through the shim run as sent
// and are not recorded (a subscription belongs to its database): the DDL guard lets them
// through rather than refusing them at their end, after a CREATE SUBSCRIPTION may have made
// its slot on the publisher. REINDEX … CONCURRENTLY (no event trigger in PostgreSQL 15) runs
// too. The peer gets none of them and the stream goes on.
func TestSubscriptionDDLExempt(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE items (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	subs := func() (local, peer int) {
		t.Helper()
		q := `SELECT count(*) FROM pg_subscription WHERE subname = 'tandem_test_sub'`
		return queryOne[int](t, p.ldb, q), queryOne[int](t, p.pdb, q)
	}
	for _, c := range []struct {
		sql         string
		local, peer int
	}{
		{`CREATE SUBSCRIPTION tandem_test_sub CONNECTION 'host=/nonexistent dbname=nope' PUBLICATION nope WITH (connect = false)`, 1, 0},
		{`ALTER SUBSCRIPTION tandem_test_sub SET (slot_name = NONE)`, 1, 0},
		{`DROP SUBSCRIPTION tandem_test_sub`, 0, 0},
	} {
		if _, err := conn.Exec(ctx, c.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
		if l, pr := subs(); l != c.local || pr != c.peer {
			t.Fatalf("%s: subscription on the local database %d, on the peer %d; want %d, %d", c.sql, l, pr, c.local, c.peer)
		}
	}
	if _, err := conn.Exec(ctx, `REINDEX TABLE CONCURRENTLY items`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("REINDEX CONCURRENTLY: %v", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO items VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the row on the peer", 10*time.Second, func() bool { return queryOne[int](t, p.pdb, `SELECT count(*) FROM items`) == 1 })
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM tandem.ddl WHERE stmt ILIKE '%SUBSCRIPTION%'`); n != 0 {
		t.Fatalf("%d subscription statements recorded for the peer", n)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("mode %v, peer synced %v", m, sh.PeerSynced())
	}
	diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", err, diffs)
	}
}
