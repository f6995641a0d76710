package txshim

import (
	"fmt"
	"testing"
	"time"
)

// compositeKeySetup makes tables whose replica identity holds a column of a composite type: a
// primary key of one, of one with another column, of a domain over one, of one with a field of
// a domain type, of an array of one and of an array of a domain over one (whose "=" is the
// array's, and took an untyped parameter as the column's type before too), a REPLICA IDENTITY
// USING INDEX over one, a REPLICA IDENTITY FULL table of one, and partitioned tables whose key
// holds one (by list of another column, by range of the composite).
var compositeKeySetup = []string{
	`CREATE TYPE ck AS (a int, b text)`,
	`CREATE DOMAIN dck AS ck CHECK ((VALUE).a <> 0)`,
	`CREATE TABLE ckone (k ck PRIMARY KEY, v int)`,
	`CREATE TABLE cktwo (id int, k ck, v int, PRIMARY KEY (id, k))`,
	`CREATE TABLE ckdom (k dck PRIMARY KEY, v int)`,
	`CREATE TABLE ckarr (k ck[] PRIMARY KEY, v int)`,
	`CREATE TABLE ckdarr (k dck[] PRIMARY KEY, v int)`,
	`CREATE DOMAIN posf AS int CHECK (VALUE > 0)`,
	`CREATE TYPE fk AS (a posf, b text)`,
	`CREATE TABLE ckfld (k fk PRIMARY KEY, v int)`,
	`CREATE TABLE ckidx (k ck NOT NULL, v int)`,
	`CREATE UNIQUE INDEX ckidx_k ON ckidx (k)`,
	`ALTER TABLE ckidx REPLICA IDENTITY USING INDEX ckidx_k`,
	`CREATE TABLE ckfull (k ck, d dck, ka ck[], v int)`,
	`ALTER TABLE ckfull REPLICA IDENTITY FULL`,
	`CREATE TABLE ckpart (id int, k ck, v int, PRIMARY KEY (id, k)) PARTITION BY LIST (id)`,
	`CREATE TABLE ckpart_1 PARTITION OF ckpart FOR VALUES IN (1)`,
	`CREATE TABLE ckpart_2 PARTITION OF ckpart FOR VALUES IN (2)`,
	`CREATE TABLE ckbulk (k ck PRIMARY KEY, v int)`,
	`CREATE TABLE ckrange (k ck, v int, PRIMARY KEY (k)) PARTITION BY RANGE (k)`,
	`CREATE TABLE ckrange_lo PARTITION OF ckrange FOR VALUES FROM (MINVALUE) TO (ROW(10, ''))`,
	`CREATE TABLE ckrange_hi PARTITION OF ckrange FOR VALUES FROM (ROW(10, '')) TO (MAXVALUE)`,
}

// compositeKeyWrites fill those tables (n: a number to tell rows of one round from another's).
func compositeKeyWrites(n int) []string {
	return []string{
		fmt.Sprintf(`INSERT INTO ckone VALUES (ROW(%d, 'x y'), 0), (ROW(%d, NULL), 0), (ROW(%d, 'q"u,o(te)'), 0)`, n, n+1, n+2),
		fmt.Sprintf(`INSERT INTO cktwo VALUES (%d, ROW(1, 'a'), 0), (%d, ROW(2, NULL), 0)`, n, n),
		fmt.Sprintf(`INSERT INTO ckdom VALUES (ROW(%d, 'a'), 0), (ROW(%d, 'b'), 0)`, n, n+1),
		fmt.Sprintf(`INSERT INTO ckarr VALUES (ARRAY[ROW(%d, 'a')::ck, ROW(NULL, 'b')::ck], 0), (ARRAY[ROW(%d, 'c')::ck], 0)`, n, n+1),
		fmt.Sprintf(`INSERT INTO ckdarr VALUES (ARRAY[ROW(%d, 'a')::dck], 0), (ARRAY[ROW(%d, 'b')::dck], 0)`, n, n+1),
		fmt.Sprintf(`INSERT INTO ckfld VALUES (ROW(%d, 'a'), 0), (ROW(%d, 'b'), 0)`, n, n+1),
		fmt.Sprintf(`INSERT INTO ckidx VALUES (ROW(%d, 'a'), 0), (ROW(%d, 'b'), 0)`, n, n+1),
		fmt.Sprintf(`INSERT INTO ckfull VALUES (ROW(%d, 'a'), ROW(1, 'd'), ARRAY[ROW(%[1]d, 'e')::ck], 0), (ROW(%d, NULL), NULL, NULL, 0)`, n, n+1),
		fmt.Sprintf(`INSERT INTO ckpart VALUES (1, ROW(%d, 'a'), 0), (2, ROW(%d, 'b'), 0)`, n, n),
		// Enough rows for the apply's COPY (copyMin).
		fmt.Sprintf(`INSERT INTO ckbulk SELECT ROW(g, 'r' || g)::ck, 0 FROM generate_series(%d, %d) g`, 1000*n, 1000*n+99),
		fmt.Sprintf(`INSERT INTO ckrange VALUES (ROW(1, 'a%d'), 0), (ROW(%d, 'b'), 0)`, n, 10+n),
	}
}

// compositeKeyChanges update and delete the rows compositeKeyWrites(n) made: updates of other
// columns, of the key itself (moving a partitioned row across partitions), and deletes.
func compositeKeyChanges(n int) []string {
	return []string{
		fmt.Sprintf(`UPDATE ckone SET v = 1 WHERE k = ROW(%d, 'x y')::ck`, n),
		fmt.Sprintf(`UPDATE ckone SET k = ROW(-%d, 'moved') WHERE (k).a = %d`, n+1, n+1),
		fmt.Sprintf(`DELETE FROM ckone WHERE (k).a = %d`, n+2),
		fmt.Sprintf(`UPDATE cktwo SET v = 1 WHERE id = %d AND (k).a = 1`, n),
		fmt.Sprintf(`DELETE FROM cktwo WHERE id = %d AND (k).a = 2`, n),
		fmt.Sprintf(`UPDATE ckdom SET v = 1 WHERE (k).a = %d`, n),
		fmt.Sprintf(`UPDATE ckdom SET k = ROW(-%d, 'moved') WHERE (k).a = %[1]d`, n),
		fmt.Sprintf(`DELETE FROM ckdom WHERE (k).a = %d`, n+1),
		fmt.Sprintf(`UPDATE ckarr SET v = 1 WHERE (k[1]).a = %d`, n),
		fmt.Sprintf(`UPDATE ckarr SET k = k || ROW(0, 'z')::ck WHERE (k[1]).a = %d`, n),
		fmt.Sprintf(`DELETE FROM ckarr WHERE (k[1]).a = %d`, n+1),
		fmt.Sprintf(`UPDATE ckdarr SET v = 1 WHERE (k[1]).a = %d`, n),
		fmt.Sprintf(`DELETE FROM ckdarr WHERE (k[1]).a = %d`, n+1),
		fmt.Sprintf(`UPDATE ckfld SET v = 1 WHERE (k).a = %d`, n),
		fmt.Sprintf(`UPDATE ckfld SET k = ROW(%d, 'moved') WHERE (k).a = %[1]d`, n+1),
		fmt.Sprintf(`DELETE FROM ckfld WHERE (k).a = %d`, n),
		fmt.Sprintf(`UPDATE ckidx SET v = 1 WHERE (k).a = %d`, n),
		fmt.Sprintf(`DELETE FROM ckidx WHERE (k).a = %d`, n+1),
		fmt.Sprintf(`UPDATE ckfull SET v = 1 WHERE (k).a = %d`, n),
		fmt.Sprintf(`DELETE FROM ckfull WHERE (k).a = %d`, n+1),
		fmt.Sprintf(`UPDATE ckpart SET v = 1 WHERE id = 1 AND (k).a = %d`, n),
		fmt.Sprintf(`UPDATE ckpart SET id = 1 WHERE id = 2 AND (k).a = %d`, n),
		fmt.Sprintf(`DELETE FROM ckpart WHERE id = 1 AND (k).b = 'a' AND (k).a = %d`, n),
		fmt.Sprintf(`UPDATE ckbulk SET v = v + 1 WHERE (k).a BETWEEN %d AND %d`, 1000*n, 1000*n+99),
		fmt.Sprintf(`DELETE FROM ckbulk WHERE (k).a BETWEEN %d AND %d`, 1000*n, 1000*n+49),
		fmt.Sprintf(`UPDATE ckrange SET v = 1 WHERE k = ROW(1, 'a%d')::ck`, n),
		fmt.Sprintf(`UPDATE ckrange SET k = ROW(5, 'lo%d') WHERE (k).a = %[1]d`, 10+n),
		fmt.Sprintf(`DELETE FROM ckrange WHERE k = ROW(1, 'a%d')::ck`, n),
	}
}

// TestApplyCompositeKey: an UPDATE or DELETE of a table whose replica identity holds a column of
// a composite type (of a domain over one, an array of one; in a key index, a REPLICA IDENTITY
// FULL table, a partitioned table, published through its root or not) finds its row on the
// peer, and verify finds both databases alike, or names the key of a row that differs.
func TestApplyCompositeKey(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, compositeKeySetup...)
	dualCommit(t, p, s, gidFor("a", 1, 1), compositeKeyWrites(1)...)
	requireSame(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 2), compositeKeyChanges(1)...)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM ckone WHERE k = ROW(-2, 'moved')::ck`); n != 1 {
		t.Errorf("the peer's ckone lacks the moved key")
	}
	// Published via their roots, the partitioned tables' changes are applied to the roots.
	p.local.Exec(t, `ALTER PUBLICATION `+PublicationName+` SET (publish_via_partition_root = true)`)
	dualCommit(t, p, s, gidFor("a", 1, 3), compositeKeyWrites(100)...)
	dualCommit(t, p, s, gidFor("a", 1, 4), compositeKeyChanges(100)...)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}

	// And verify names a row of such a key that differs.
	if _, err := p.pdb.Exec(`UPDATE ckone SET v = 7 WHERE k = ROW(-2, 'moved')::ck`); err != nil {
		t.Fatal(err)
	}
	diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if want := `table public.ckone has 4 rows on both databases but their contents differ: key ("(-2,moved)") differs`; err != nil || len(diffs) != 1 || diffs[0] != want {
		t.Errorf("Verify = %q, %v; want [%q]", diffs, err, want)
	}
}

// TestCatchUpCompositeKey: the same changes committed while the peer was down reach it by
// catch-up (plain commits shipped from the stream, in runs), and verify finds both alike.
func TestCatchUpCompositeKey(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, compositeKeySetup...)
	installPair(t, p)
	sh := pairShipper(p, 2, 5*time.Second)
	sh.SetTerm(1)
	runShipper(t, sh)

	p.peer.Kill()
	stmts := 0
	for n := 1; n <= 3; n++ {
		for _, q := range compositeKeyWrites(10 * n) {
			p.local.Exec(t, q)
			stmts++
		}
		for _, q := range compositeKeyChanges(10 * n) {
			p.local.Exec(t, q)
			stmts++
		}
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == stmts && sh.linkState() == linkDown })
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sh.CatchUp(capCtx(t, 60*time.Second), nil); err != nil {
		t.Fatalf("CatchUp: %v", err)
	}
	requireSame(t, p)
}
