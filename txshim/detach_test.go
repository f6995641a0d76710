package txshim

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDetachConcurrentlyShips: ALTER TABLE … DETACH PARTITION … CONCURRENTLY through the shim,
// on the simple and the extended protocol, runs as sent (PostgreSQL commits its two steps
// apart, so it cannot ship in a transaction of its own) and is then recorded for the peer
// without CONCURRENTLY: its reply comes once the partition is detached on both databases, rows
// written afterwards to the detached table and to the parent ship, and Verify finds both
// databases identical. A failed one records nothing.
//
// Not parallel: beside other tests on a loaded machine its first DETACH … CONCURRENTLY once
// got no reply within the 90 s context (not understood yet; see the change that made the
// package's tests parallel).
func TestDetachConcurrentlyShips(t *testing.T) {
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)`,
		`CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100)`,
		`CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200)`,
		`CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (200) TO (300)`,
		`INSERT INTO m VALUES (1, 'a'), (101, 'b'), (201, 'c')`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 90*time.Second)
	conn := shim.connect(t)
	attached := func(part string) (local, peer int) {
		t.Helper()
		q := `SELECT count(*) FROM pg_inherits WHERE inhrelid = $1::regclass`
		return queryOne[int](t, p.ldb, q, part), queryOne[int](t, p.pdb, q, part)
	}
	detach := func(sql, part string, mode pgx.QueryExecMode) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, mode); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if l, pr := attached(part); l != 0 || pr != 0 {
			t.Fatalf("%s: %s still attached on the local database (%d) or the peer (%d) after the reply", sql, part, l, pr)
		}
	}
	detach(`ALTER TABLE m DETACH PARTITION m2 CONCURRENTLY`, "m2", pgx.QueryExecModeSimpleProtocol)
	detach(`ALTER TABLE IF EXISTS m DETACH PARTITION m3 CONCURRENTLY;`, "m3", pgx.QueryExecModeExec)
	// PostgreSQL adds to a partition detached concurrently a CHECK constraint duplicating its
	// partition constraint; a plain DETACH does not, so the shim records it for the peer.
	checks := `SELECT coalesce(string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname), '') FROM pg_constraint
		WHERE conrelid IN ('m2'::regclass, 'm3'::regclass) AND contype = 'c'`
	if l, pr := queryOne[string](t, p.ldb, checks), queryOne[string](t, p.pdb, checks); l != pr || !strings.Contains(l, "m3_") {
		t.Fatalf("CHECK constraints of the detached partitions: local %q, peer %q (recorded: %s)", l, pr,
			queryOne[string](t, p.ldb, `SELECT string_agg(stmt, '; ' ORDER BY id) FROM tandem.ddl`))
	}
	if _, err := p.pdb.Exec(`INSERT INTO m3 VALUES (500, 'out of its old range')`); err == nil {
		t.Fatal("the peer's m3 took a row out of its old partition range")
	}
	// A failed one (m2 is no longer a partition) records nothing: the stream goes on.
	if _, err := conn.Exec(ctx, `ALTER TABLE m DETACH PARTITION m2 CONCURRENTLY`, pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Fatal("detaching a detached partition succeeded")
	}
	for _, sql := range []string{
		`INSERT INTO m2 VALUES (102, 'detached')`,
		`INSERT INTO m3 VALUES (202, 'detached too')`,
		`INSERT INTO m VALUES (2, 'parent')`,
		`UPDATE m2 SET v = 'b2' WHERE id = 101`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	waitForLong(t, "the rows written after the detach on the peer", 10*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM m2) + (SELECT count(*) FROM m3)`) == 6
	})
	waitForLong(t, "the update of the detached table on the peer", 10*time.Second, func() bool {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM m2 WHERE v = 'b2'`) == 1
	})
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the detaches: mode %v, peer synced %v", m, sh.PeerSynced())
	}
	diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", err, diffs)
	}
}

// TestDetachShipAfterText: the statement recorded for the peer after a DETACH PARTITION …
// CONCURRENTLY, and the partition it names as written; FINALIZE and a plain DETACH are
// ordinary DDL.
func TestDetachShipAfterText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ sql, after, part string }{
		{`ALTER TABLE p DETACH PARTITION c CONCURRENTLY`, `ALTER TABLE p DETACH PARTITION c`, `c`},
		{`alter table if exists s.p detach partition "S"."My C" concurrently;`, `alter table if exists s.p detach partition "S"."My C"`, `"S"."My C"`},
		{`ALTER TABLE p DETACH PARTITION /* x */ c CONCURRENTLY`, `ALTER TABLE p DETACH PARTITION /* x */ c`, `/* x */ c`},
		{`ALTER TABLE p DETACH PARTITION c FINALIZE`, ``, `c`},
		{`ALTER TABLE p DETACH PARTITION c`, ``, ``},
	} {
		sts := splitStatements(c.sql)
		if len(sts) != 1 {
			t.Fatalf("%s: %d statements", c.sql, len(sts))
		}
		if a, p := shipAfterText(c.sql, sts[0]), detachedText(c.sql, sts[0]); a != c.after || p != c.part {
			t.Errorf("%s: recorded %q, partition %q; want %q, %q", c.sql, a, p, c.after, c.part)
		}
	}
}

// TestDetachFinalizeShips: a DETACH PARTITION … CONCURRENTLY canceled after its first step
// (the partition stays detach-pending here; nothing is recorded) is completed with
// ALTER TABLE … DETACH PARTITION … FINALIZE through the shim; the peer, whose partition was
// never pending, gets a plain DETACH PARTITION with the CHECK constraint, and both databases
// end alike.
func TestDetachFinalizeShips(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)`,
		`CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (0) TO (100)`,
		`CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (100) TO (200)`,
		`INSERT INTO m VALUES (1, 'a'), (101, 'b')`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 90*time.Second)
	conn := shim.connect(t)
	// A transaction with a snapshot older than the detach's first step holds its second.
	hold, err := p.ldb.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Rollback()
	if _, err := hold.Exec(`SELECT count(*) FROM m`); err != nil {
		t.Fatal(err)
	}
	simple := pgx.QueryExecModeSimpleProtocol
	if _, err := conn.Exec(ctx, `SET statement_timeout = '1s'`, simple); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE m DETACH PARTITION m2 CONCURRENTLY`, simple); err == nil {
		t.Fatal("the detach did not wait for the older snapshot")
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_inherits WHERE inhrelid = 'm2'::regclass AND inhdetachpending`); n != 1 {
		t.Fatalf("m2 not detach-pending after the canceled detach (%d)", n)
	}
	if err := hold.Rollback(); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `RESET statement_timeout`, simple); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ALTER TABLE m DETACH PARTITION m2 FINALIZE`, simple); err != nil {
		t.Fatalf("FINALIZE: %v", err)
	}
	// FINALIZE is ordinary DDL, shipped with its transaction: the peer's COMMIT PREPARED may
	// follow the reply.
	q := `SELECT count(*) FROM pg_inherits WHERE inhrelid = 'm2'::regclass`
	if l := queryOne[int](t, p.ldb, q); l != 0 {
		t.Fatalf("after FINALIZE m2 still attached on the local database")
	}
	waitForLong(t, "m2 detached on the peer", 10*time.Second, func() bool { return queryOne[int](t, p.pdb, q) == 0 })
	checks := `SELECT coalesce(string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname), '') FROM pg_constraint
		WHERE conrelid = 'm2'::regclass AND contype = 'c'`
	if l, pr := queryOne[string](t, p.ldb, checks), queryOne[string](t, p.pdb, checks); l != pr {
		t.Fatalf("CHECK constraints of m2: local %q, peer %q", l, pr)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO m2 VALUES (102, 'detached')`); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "the row on the peer", 10*time.Second, func() bool { return queryOne[int](t, p.pdb, `SELECT count(*) FROM m2`) == 2 })
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("mode %v, peer synced %v", m, sh.PeerSynced())
	}
	diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil || len(diffs) != 0 {
		t.Fatalf("verify: %v %v", err, diffs)
	}
}
