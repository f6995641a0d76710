package txshim

import (
	"context"
	"testing"
	"time"
)

// TestResyncDeferrableDefaults: resync read the peer's application schema (resyncSchemas) in
// transactions of the peer database's defaults: under SERIALIZABLE, READ ONLY and DEFERRABLE
// ones (ALTER DATABASE … SET, for the backup site's own reporting applications) it waited for
// a safe snapshot for as long as a serializable read-write transaction was open there — one
// of the blockers the copy then ends (TestResyncEndsBlockers) — so the resync never came to
// the copy. It reads READ COMMITTED, without the database's timeouts.
func TestResyncDeferrableDefaults(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	for _, set := range []string{`default_transaction_isolation = serializable`, `default_transaction_deferrable = on`, `default_transaction_read_only = on`} {
		p.peer.Exec(t, `ALTER DATABASE app SET `+set)
	}
	ctx := capCtx(t, 60*time.Second)
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'one')`)
	writer, err := p.peer.Open(t, "app").Conn(ctx) // of the new defaults
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	for _, q := range []string{`BEGIN READ WRITE`, `INSERT INTO kv VALUES (2, 'two')`} {
		if _, err := writer.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sh.Resync(rctx, nil); err != nil {
		t.Fatalf("Resync with a serializable writer open on the peer: %v", err)
	}
	requireSame(t, p)
}
