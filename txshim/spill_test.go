package txshim

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLargeTransaction: transactions far larger than the journal's memory bound — tens of
// thousands of rows with now(), random() and gen_random_uuid() values, key changes, deletes, an
// ALTER TABLE halfway (the spilled changes after it carry the new column) and a TRUNCATE —
// commit dual through the shim: their changes past SpillBytes go to a spill file and reach the
// peer in batches. Held in memory they would overflow the journal and take the peer out of
// step. Then one commits alone while the peer is down, and catch-up ships it from its spill.
// Both end identical, nothing prepared, no spill file left behind.
//
// Not parallel: its 20 000-row transactions are decoded, spilled and applied within the
// shim's commit timeout and the Shipper's 5 s operation timeout, which other tests beside it
// on a loaded 2-CPU machine would eat into.
func TestLargeTransaction(t *testing.T) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE big (id bigint PRIMARY KEY, v text, at timestamptz, r float8, u uuid)`,
		`CREATE TABLE side (k int PRIMARY KEY, n int NOT NULL)`,
		`INSERT INTO side SELECT g, 0 FROM generate_series(1, 100) g`,
		`CREATE TABLE gone (x int)`, `INSERT INTO gone SELECT generate_series(1, 10)`,
		`CREATE TABLE ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, s text, j jsonb)`)
	installPair(t, p)
	logger := quietLogger()
	spillDir := t.TempDir()
	const bound = 1 << 20
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 2,
		OpTimeout: 5 * time.Second, MaxJournalBytes: bound, SpillBytes: 32 << 10, SpillDir: spillDir,
		SequenceInterval: -1, Logger: logger})
	sh.SetTerm(1)
	runShipper(t, sh)
	shim := startShim(t, p.local, Options{Peer: sh, Site: "a", Logger: logger, OnPeerDown: func() bool { return true }}, ModeSolo, 1)
	hold := catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 3*time.Minute)
	conn := shim.connect(t)

	// bigTxn runs one large transaction through the shim; base keeps the rounds' keys apart.
	bigTxn := func(base int) {
		t.Helper()
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, q := range []string{
			`INSERT INTO big SELECT %[1]d + g, repeat('x', 40) || g, now(), random(), gen_random_uuid() FROM generate_series(1, 20000) g`,
			// COPY's text format: escapes and nulls; identity values kept as decoded.
			`INSERT INTO ident (s, j) SELECT CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\there\nnew line \\ back\rslash ' || g END, jsonb_build_object('g', g, 's', E'q"\t') FROM generate_series(1, 300) g`,
			`UPDATE side SET n = n + 1`,
			`ALTER TABLE big ADD COLUMN IF NOT EXISTS extra int DEFAULT 7`,
			`INSERT INTO big (id, v, extra) SELECT %[1]d + g, 'late', g FROM generate_series(20001, 22000) g`,
			`UPDATE big SET id = id + 100000, r = random() WHERE id > %[1]d AND id <= %[1]d + 500`,
			`DELETE FROM big WHERE id BETWEEN %[1]d + 1000 AND %[1]d + 1999`,
			`TRUNCATE gone`,
			`INSERT INTO gone SELECT generate_series(1, 5)`,
		} {
			if strings.Contains(q, "%[1]d") {
				q = fmt.Sprintf(q, base)
			}
			if _, err := tx.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatalf("commit of the large transaction: %v", err)
		}
	}
	settled := func(what string) {
		t.Helper()
		waitForLong(t, what, 60*time.Second, func() bool {
			return sh.Backlog() == 0 && queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_prepared_xacts`) == 0 &&
				queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_prepared_xacts`) == 0
		})
		requireSame(t, p)
	}

	before := shim.Stats()
	start := time.Now()
	bigTxn(0)
	st := shim.Stats()
	t.Logf("a transaction of 23 000 row changes committed in %v: %+v, shipper %+v", time.Since(start), st, sh.Stats())
	if st.CommitsDual != before.CommitsDual+1 || st.CommitsSolo != before.CommitsSolo {
		t.Fatalf("the large transaction did not commit dual: before %+v, after %+v", before, st)
	}
	if ss := sh.Stats(); ss.Spilled == 0 || ss.Dropped != 0 || ss.Copied < 20000 {
		t.Errorf("shipper %+v: want the transaction spilled, nothing dropped from the journal, its inserts copied", ss)
	}
	settled("the large transaction on both")
	if !sh.PeerSynced() {
		t.Error("the peer fell out of step after the large transaction")
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM big WHERE extra = 7`); n != 19000 {
		t.Errorf("peer: %d rows of the first insert with extra = 7, want 19000", n)
	}

	// Alone while the peer is down; catch-up ships it, its spill read a second time.
	p.peer.Kill()
	bigTxn(1_000_000)
	if st := shim.Stats(); st.CommitsSolo == 0 {
		t.Fatalf("the second large transaction did not commit alone: %+v", st)
	}
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 90*time.Second), hold); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	if ss := sh.Stats(); ss.Shipped == 0 || ss.Spilled < 2 {
		t.Errorf("shipper after catch-up %+v: want the transaction shipped from a spill", ss)
	}
	if m, _ := shim.Mode(); m != ModeDual {
		t.Errorf("mode after catch-up %v, want dual", m)
	}
	settled("the caught-up large transaction on both")
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM big`); n != 2*21000 {
		t.Errorf("peer holds %d rows of big, want %d", n, 2*21000)
	}
	// Spill files are unlinked when made: the directory stays empty throughout.
	if ents, err := os.ReadDir(spillDir); err != nil || len(ents) != 0 {
		t.Errorf("spill directory: %v, %d entries left", err, len(ents))
	}
}

// TestSpillWriteFails: a spill file that cannot be written (a full disk) stopped the decoder,
// and every new decoder failed on the same transaction while the disk stayed full: the
// transaction never reached the peer, and its commit waited out its timeout. The decoder
// after such a failure holds transactions in memory, so the commit goes through dual.
func TestSpillWriteFails(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) { c.SpillBytes = 16 << 10 },
		Options{}, `CREATE TABLE big (id int PRIMARY KEY, v text)`)
	sh.hooks.spillWrite.set(func() error { return syscall.ENOSPC })
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	ctx := capCtx(t, 60*time.Second)
	before := shim.Stats()
	if _, err := conn.Exec(ctx, `INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g`); err != nil {
		t.Fatalf("a transaction larger than SpillBytes, with its spill file unwritable: %v", err)
	}
	if st := shim.Stats(); st.CommitsDual != before.CommitsDual+1 {
		t.Fatalf("the transaction did not commit dual: before %+v, after %+v", before, st)
	}
	waitFor(t, "the peer to have the transaction", func() bool { return sh.Backlog() == 0 })
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM big`); n != 2000 {
		t.Errorf("the peer holds %d rows, want 2000", n)
	}
	requireSame(t, p)
}
