package txshim

import (
	"errors"
	"testing"
	"time"
)

// TestResyncNotValidCheck: a CHECK constraint added NOT VALID holds over the rows from before
// it, which may break it, on both databases (the schema comparison leaves NOT VALID out) — of
// a table, a partitioned one, or a domain. COPY checks every row all the same: the peer refused
// the copy of such rows, and resync could never succeed.
func TestResyncNotValidCheck(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE DOMAIN small AS int`,
		`CREATE TABLE kv (k int PRIMARY KEY, v int, s small)`, `INSERT INTO kv VALUES (1, -1, 100), (2, 2, 1)`,
		`CREATE TABLE part (k int, v int) PARTITION BY RANGE (k)`, `CREATE TABLE part1 PARTITION OF part FOR VALUES FROM (0) TO (10)`,
		`INSERT INTO part VALUES (1, -1)`,
		`ALTER TABLE kv ADD CONSTRAINT pos CHECK (v > 0) NOT VALID`,
		`ALTER TABLE part ADD CONSTRAINT ppos CHECK (v > 0) NOT VALID`,
		`ALTER DOMAIN small ADD CONSTRAINT lt10 CHECK (VALUE < 10) NOT VALID`)
	sh := syncedShipper(t, p)
	p.pdb.Exec(`DELETE FROM kv WHERE k = 2`) // the peer diverges
	p.local.Exec(t, `UPDATE kv SET v = 3 WHERE k = 2`)
	waitFor(t, "the stream to stop on the divergence", func() bool { return sh.Err() != nil })
	if err := sh.CatchUp(capCtx(t, 10*time.Second), nil); !errors.Is(err, ErrNeedsResync) {
		t.Fatalf("CatchUp = %v, want ErrNeedsResync", err)
	}
	if err := sh.Resync(capCtx(t, 30*time.Second), nil); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	requireSame(t, p)
	const notValid = `SELECT string_agg(conname || ' ' || convalidated, ', ' ORDER BY conname) FROM pg_constraint WHERE contype = 'c'`
	if l, pe := queryOne[string](t, p.ldb, notValid), queryOne[string](t, p.pdb, notValid); l != pe {
		t.Fatalf("CHECK constraints after resync: local %s, peer %s", l, pe)
	}
	// Still checked for new rows on the peer.
	if _, err := p.pdb.Exec(`INSERT INTO part VALUES (2, -5)`); err == nil {
		t.Fatal("the peer takes a row its constraint NOT VALID refuses")
	}
}
