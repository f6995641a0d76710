package txshim

import (
	"context"
	"testing"
	"time"
)

// TestInstallDeferrableDefaults: install read each database's application schema in a READ
// ONLY transaction of the database's default isolation: under SERIALIZABLE and DEFERRABLE
// defaults (ALTER DATABASE … SET, a reporting database's) it waited for a safe snapshot —
// until every serializable read-write transaction open there had ended, one left prepared (a
// commit in doubt, which the resolver settles later) included — and failed only at its
// context's end with an i/o timeout that named nothing of it. It reads REPEATABLE READ, as
// verify does.
func TestInstallDeferrableDefaults(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `CREATE TABLE other (k int PRIMARY KEY)`)
	installPair(t, p)
	p.local.Exec(t, `ALTER DATABASE app SET default_transaction_isolation = serializable`)
	p.local.Exec(t, `ALTER DATABASE app SET default_transaction_deferrable = on`)
	// A serializable read-write transaction left prepared on the local database.
	c, err := p.local.Open(t, "app").Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{`BEGIN`, `INSERT INTO other VALUES (1)`, `PREPARE TRANSACTION 'left'`} {
		if _, err := c.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { p.local.Exec(t, `ROLLBACK PREPARED 'left'`) })
	// Installed already: a second install (after an upgrade, say) finds everything there.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatalf("install with a serializable transaction prepared on the local database: %v", err)
	}
}
