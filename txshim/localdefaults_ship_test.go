package txshim

import (
	"context"
	"testing"
	"time"
)

// TestDecoderLocalDeferrableDefaults: the decoder's replication connection reads where its
// slot stands with a query, run in a transaction of the local database's defaults: under
// SERIALIZABLE, READ ONLY and DEFERRABLE ones it waited for a safe snapshot for as long as a
// serializable read-write transaction was open on the local database, and nothing was
// shipped meanwhile.
func TestDecoderLocalDeferrableDefaults(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	ctx := capCtx(t, 60*time.Second)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	if err := Install(ctx, "a", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatal(err)
	}
	for _, set := range deferrableDefaults {
		p.local.Exec(t, `ALTER DATABASE app SET `+set)
	}
	openSerializableWriter(t, ctx, p.local.Open(t, "app"))
	evs := runDecoder(t, NewDecoder(p.local.DSN("app"), "a", nil))
	p.local.Exec(t, `BEGIN ISOLATION LEVEL READ COMMITTED, READ WRITE; INSERT INTO kv VALUES (1, 'one'); COMMIT`)
	if ev := nextTxnEvent(t, evs); ev.Txn == nil || len(ev.Txn.Changes) != 1 {
		t.Fatalf("event %+v, want the insert", ev)
	}
}

// TestResyncLocalDeferrableDefaults: resync's connection to the local database pinned the
// settings that fix how values read and no timeouts, but its reads before the snapshot's
// REPEATABLE READ block (resyncPoint: whether a transaction is prepared) ran in transactions
// of the local database's defaults: under SERIALIZABLE, READ ONLY and DEFERRABLE ones they
// waited for a safe snapshot for as long as a serializable read-write transaction was open
// there, and the resync failed at its context's end.
func TestResyncLocalDeferrableDefaults(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 'one')`)
	for _, set := range deferrableDefaults {
		p.local.Exec(t, `ALTER DATABASE app SET `+set)
	}
	ctx := capCtx(t, 60*time.Second)
	openSerializableWriter(t, ctx, p.local.Open(t, "app"))
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sh.Resync(rctx, nil); err != nil {
		t.Fatalf("Resync with a serializable writer open on the local database: %v", err)
	}
	requireSame(t, p)
}
