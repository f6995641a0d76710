package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestOpenDBSerializableDefaultTermWrite: the control connections (OpenDB) pinned writable and
// no timeouts but took the database's default isolation: under SERIALIZABLE (ALTER DATABASE …
// SET default_transaction_isolation, for its own applications) a term record write that waited
// for another's on the same row — a promotion writing its term into the peer's database while
// the peer's sidecar copies the record it adopted there — failed with 40001 once that one
// committed, where READ COMMITTED reads the row it committed and decides by it: the promotion
// took the peer for out of step. They run READ COMMITTED, as Tandem's other own sessions do.
func TestOpenDBSerializableDefaultTermWrite(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, schemaSQL)
	c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET default_transaction_isolation = serializable`)
	ctx := capCtx(t, 30*time.Second)
	db, err := OpenDB(c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := WriteTermRecord(ctx, db, 1, "a", true); err != nil {
		t.Fatal(err)
	}
	// The adopted record's copy, under way: the row locked, not committed yet.
	plain := c.Open(t, c.Database())
	holder, err := plain.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	for _, q := range []string{`BEGIN ISOLATION LEVEL READ COMMITTED`,
		`UPDATE tandem.state SET term = 2, master = 'a', peer_synced = true WHERE id = 1`} {
		if _, err := holder.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- WriteTermRecord(wctx, db, 2, "a", false)
	}()
	waitFor(t, "the term write to wait for the row's lock", func() bool {
		return queryOne[int](t, plain, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO tandem.state%'`) == 1
	})
	if _, err := holder.ExecContext(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a term record write that waited for another of the same term and master: %v", err)
	}
	if term, master, synced, err := ReadTermRecord(ctx, db); err != nil || term != 2 || master != "a" || synced {
		t.Fatalf("term record %d/%s synced %v (%v), want 2/a unsynced", term, master, synced, err)
	}
}
