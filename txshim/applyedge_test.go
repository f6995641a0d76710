package txshim

import (
	"database/sql"
	"testing"
	"time"
)

// TestApplyDeferrableSwap: a statement that swaps the keys of two rows under a DEFERRABLE
// (INITIALLY IMMEDIATE) primary key, unique or exclusion constraint passes on the local
// database — the constraint is checked at the statement's end — and reaches the peer as one
// UPDATE per row.
func TestApplyDeferrableSwap(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE EXTENSION IF NOT EXISTS btree_gist`,
		`CREATE TABLE dk (id int PRIMARY KEY DEFERRABLE, v text)`,
		`ALTER TABLE dk REPLICA IDENTITY FULL`,
		`CREATE TABLE du (id int PRIMARY KEY, u int UNIQUE DEFERRABLE INITIALLY IMMEDIATE)`,
		`CREATE TABLE dx (id int PRIMARY KEY, r int4range, EXCLUDE USING gist (r WITH &&) DEFERRABLE)`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO dk VALUES (1, 'one'), (2, 'two')`,
		`INSERT INTO du VALUES (1, 10), (2, 20)`,
		`INSERT INTO dx VALUES (1, '[0,10)'), (2, '[10,20)')`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE dk SET id = 3 - id`)
	dualCommit(t, p, s, gidFor("a", 1, 3), `UPDATE du SET u = 30 - u`)
	dualCommit(t, p, s, gidFor("a", 1, 4), `UPDATE dx SET r = CASE id WHEN 1 THEN '[10,20)'::int4range ELSE '[0,10)' END`)
	requireSame(t, p)
}

// TestApplyDeferredConstraint: a constraint INITIALLY DEFERRED, violated inside the
// transaction and repaired before its end, is applied too.
func TestApplyDeferredConstraint(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE dd (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text)`,
		`ALTER TABLE dd REPLICA IDENTITY FULL`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO dd VALUES (1, 'a')`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `INSERT INTO dd VALUES (1, 'b')`, `UPDATE dd SET id = 2 WHERE v = 'b'`)
	requireSame(t, p)
}

// TestDeferrableKeyReplicaIdentity: PostgreSQL takes no DEFERRABLE primary key for a table's
// replica identity (its index is not immediate), so a published table whose only key is one
// has none, and UPDATE and DELETE on it fail ("does not have a replica identity"). Plain
// PostgreSQL takes them; install and the shim's DDL must give such a table REPLICA IDENTITY
// FULL like a table without a key.
func TestDeferrableKeyReplicaIdentity(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE dk_installed (id int PRIMARY KEY DEFERRABLE, v text)`,
		`INSERT INTO dk_installed VALUES (1, 'one'), (2, 'two')`)
	for _, q := range []string{
		`UPDATE dk_installed SET id = 3 - id`,
		`DELETE FROM dk_installed WHERE id = 1`,
		`CREATE TABLE dk_new (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text)`,
		`INSERT INTO dk_new VALUES (1, 'one'), (2, 'two')`,
		`UPDATE dk_new SET id = 3 - id`,
		`BEGIN; INSERT INTO dk_new VALUES (1, 'dup'); UPDATE dk_new SET id = 5 WHERE v = 'dup'; COMMIT`,
		`DELETE FROM dk_new WHERE id = 2`,
		`CREATE TABLE dk_later (id int NOT NULL, v text)`,
		`ALTER TABLE dk_later ADD PRIMARY KEY (id) DEFERRABLE`,
		`INSERT INTO dk_later VALUES (1, 'a')`,
		`UPDATE dk_later SET v = 'b'`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	_ = p
}

// TestApplyColumnOrder: the same tables with their columns in another order on each side (made
// in another order, a column dropped on one side only, a partition attached with its own
// order): install takes them, and the apply — INSERT, COPY, UPDATE, DELETE, by key and by
// full row — maps values by column name.
func TestApplyColumnOrder(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	for _, q := range []string{
		`CREATE TABLE co (id int PRIMARY KEY, a text, b int)`,
		`CREATE TABLE cf (a text, b int)`,
		`CREATE TABLE da (id int PRIMARY KEY, x int, a text, y text)`,
		`ALTER TABLE da DROP COLUMN x`,
		`CREATE TABLE pp (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE pp_eu (v int, region text NOT NULL, id int NOT NULL)`,
		`ALTER TABLE pp ATTACH PARTITION pp_eu FOR VALUES IN ('eu')`,
		`CREATE TABLE pp_us PARTITION OF pp FOR VALUES IN ('us')`,
	} {
		p.local.Exec(t, q)
	}
	for _, q := range []string{
		`CREATE TABLE co (b int, id int PRIMARY KEY, a text)`,
		`CREATE TABLE cf (b int, a text)`,
		`CREATE TABLE da (id int PRIMARY KEY, a text, z int, y text)`,
		`ALTER TABLE da DROP COLUMN z`,
		`CREATE TABLE pp (id int, region text, v int, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE pp_eu PARTITION OF pp FOR VALUES IN ('eu')`,
		`CREATE TABLE pp_us (region text NOT NULL, v int, id int NOT NULL)`,
		`ALTER TABLE pp ATTACH PARTITION pp_us FOR VALUES IN ('us')`,
	} {
		p.peer.Exec(t, q)
	}
	installPair(t, p)
	s := startShipper(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO co VALUES (1, 'one', 10), (2, 'two', 20)`,
		`INSERT INTO co SELECT g, 'r' || g, g FROM generate_series(100, 299) g`,
		`INSERT INTO cf VALUES ('x', 1), ('x', 1), ('y', NULL)`,
		`INSERT INTO cf SELECT 'c' || g, g FROM generate_series(1, 100) g`,
		`INSERT INTO da VALUES (1, 'a', 'y'), (2, 'b', NULL)`,
		`INSERT INTO da SELECT g, 'a', 'y' || g FROM generate_series(100, 199) g`,
		`INSERT INTO pp VALUES (1, 'eu', 1), (2, 'us', 2)`,
		`INSERT INTO pp SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(100, 299) g`)
	requireSame(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 2),
		`UPDATE co SET a = 'uno', id = 3 WHERE id = 1`,
		`UPDATE co SET b = b + 1 WHERE id >= 100`,
		`UPDATE cf SET b = 2 WHERE ctid = (SELECT min(ctid) FROM cf WHERE a = 'x')`,
		`DELETE FROM cf WHERE a = 'y'`,
		`UPDATE da SET y = 'z' WHERE id = 2`,
		`UPDATE pp SET v = v * 10`,
		`UPDATE pp SET region = 'us' WHERE id = 1`,
		`DELETE FROM pp WHERE id = 2`)
	requireSame(t, p)
	p.local.Exec(t, `ALTER PUBLICATION `+PublicationName+` SET (publish_via_partition_root = true)`)
	dualCommit(t, p, s, gidFor("a", 1, 3),
		`INSERT INTO pp SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1000, 1199) g`,
		`UPDATE pp SET v = -v WHERE id >= 1000`,
		`UPDATE pp SET region = 'eu' WHERE id = 1001`,
		`DELETE FROM pp WHERE id = 1002`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyFullDuplicatesConcurrent: two transactions each change one of two identical rows of a
// REPLICA IDENTITY FULL table, at the same time: on the local database they lock different
// rows and both commit. On the peer their applies run in parallel (neither waits for the
// other: DESIGN §5.2), and each must find a row of its own — the second must not wait for the
// row the first locked and then find it gone (an apply that hits no row is divergence).
func TestApplyFullDuplicatesConcurrent(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE TABLE dup (a text, b int)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO dup VALUES ('x', 1), ('x', 1), ('y', 1), ('y', 1)`)
	for k, stmts := range [][2]string{
		{`DELETE FROM dup WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 'x')`, `DELETE FROM dup WHERE ctid = (SELECT max(ctid) FROM dup WHERE a = 'x')`},
		{`UPDATE dup SET b = 2 WHERE ctid = (SELECT min(ctid) FROM dup WHERE a = 'y')`, `UPDATE dup SET b = 3 WHERE ctid = (SELECT max(ctid) FROM dup WHERE a = 'y')`},
	} {
		g1, g2 := gidFor("a", 1, uint64(10*k+2)), gidFor("a", 1, uint64(10*k+3))
		prepareLocal(t, p.ldb, g1, stmts[0])
		prepareLocal(t, p.ldb, g2, stmts[1])
		if err := s.Prepare(capCtx(t, 10*time.Second), g1); err != nil {
			t.Fatalf("Prepare(%s): %v", g1, err)
		}
		second := make(chan error, 1)
		go func() { second <- s.Prepare(capCtx(t, 10*time.Second), g2) }()
		// The second apply runs while the first is prepared, not committed, on the peer.
		time.Sleep(500 * time.Millisecond)
		p.local.Exec(t, "COMMIT PREPARED "+sqlLiteral(g1))
		s.Commit(g1)
		if err := <-second; err != nil {
			p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(g2))
			s.Rollback(g2)
			t.Fatalf("%s: Prepare(%s) = %v; plain PostgreSQL commits both", stmts[1], g2, err)
		}
		p.local.Exec(t, "COMMIT PREPARED "+sqlLiteral(g2))
		s.Commit(g2)
		waitFor(t, "both committed on the peer", func() bool { return !preparedOn(t, p.pdb, g1) && !preparedOn(t, p.pdb, g2) })
		requireSame(t, p)
	}

	// Every matching row held by another session (one that bypassed Tandem): the apply takes
	// one anyway, and waits until the watchdog ends the holder.
	dualCommit(t, p, s, gidFor("a", 1, 30), `INSERT INTO dup VALUES ('z', 1)`)
	ctx := capCtx(t, 30*time.Second)
	holder, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(ctx, `BEGIN; SELECT * FROM dup WHERE a = 'z' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	dualCommit(t, p, s, gidFor("a", 1, 31), `UPDATE dup SET b = 9 WHERE a = 'z'`)
	requireSame(t, p)
}

// TestApplyCascadesAndRecreate: foreign keys that cascade on the local database (their
// cascaded changes are decoded, and must not fire again on the peer), TRUNCATE … RESTART
// IDENTITY CASCADE, exclusion constraints, NULLs in unique columns, a key changed under
// ON UPDATE CASCADE, and a table dropped and made anew under its name in one transaction
// after its statements were prepared on the peer.
func TestApplyCascadesAndRecreate(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE EXTENSION IF NOT EXISTS btree_gist`,
		`CREATE TABLE par (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text)`,
		`CREATE TABLE kid (id serial PRIMARY KEY, par int REFERENCES par ON DELETE CASCADE ON UPDATE CASCADE, v text)`,
		`CREATE TABLE kid_null (id int PRIMARY KEY, par int REFERENCES par ON DELETE SET NULL ON UPDATE SET NULL)`,
		`CREATE TABLE grandkid (id int PRIMARY KEY, kid int REFERENCES kid ON DELETE CASCADE)`,
		`CREATE TABLE selfref (id int PRIMARY KEY, up int REFERENCES selfref ON DELETE CASCADE)`,
		`CREATE TABLE uq (id int PRIMARY KEY, u int UNIQUE, w int, UNIQUE (u, w))`,
		`CREATE TABLE booking (id int PRIMARY KEY, room int, during int4range, EXCLUDE USING gist (room WITH =, during WITH &&))`,
		`CREATE TABLE again (id int PRIMARY KEY, v int)`)
	for _, q := range []string{
		`INSERT INTO par (v) VALUES ('a'), ('b'), ('c')`,
		`INSERT INTO kid (par, v) VALUES (1, 'a1'), (1, 'a2'), (2, 'b1'), (3, 'c1')`,
		`INSERT INTO kid_null VALUES (1, 1), (2, 2)`,
		`INSERT INTO grandkid VALUES (1, 1), (2, 2), (3, 3)`,
		`INSERT INTO selfref VALUES (1, NULL), (2, 1), (3, 2), (4, 3)`,
		`INSERT INTO uq VALUES (1, NULL, NULL), (2, NULL, NULL), (3, 1, NULL), (4, NULL, 1)`,
		`INSERT INTO booking VALUES (1, 1, '[0,10)'), (2, 1, '[10,20)'), (3, 2, '[0,10)')`,
		`INSERT INTO again VALUES (1, 1)`,
		`UPDATE again SET v = 2`,
		`DELETE FROM par WHERE id = 1`,
		`UPDATE par SET id = 20 WHERE id = 2`,
		`DELETE FROM selfref WHERE id = 2`,
		`UPDATE uq SET w = 5 WHERE u IS NULL`,
		`DELETE FROM uq WHERE id = 2`,
		`UPDATE booking SET during = '[20,30)' WHERE id = 1`,
		`DELETE FROM booking WHERE id = 2`,
		`BEGIN; DROP TABLE again; CREATE TABLE again (v text, id bigint PRIMARY KEY, extra int DEFAULT 3); INSERT INTO again VALUES ('x', 1); UPDATE again SET v = 'y'; DELETE FROM again WHERE id = 1; INSERT INTO again VALUES ('z', 2); COMMIT`,
		`UPDATE again SET v = 'w'`,
		`BEGIN; ALTER TABLE again ALTER COLUMN extra TYPE text; UPDATE again SET extra = 'three'; COMMIT`,
		`INSERT INTO kid (par, v) VALUES (3, 'c2')`,
		`TRUNCATE par RESTART IDENTITY CASCADE`,
		`INSERT INTO par (v) VALUES ('new')`,
		`INSERT INTO kid (par, v) VALUES (1, 'new')`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	for _, c := range []struct {
		q    string
		want int
	}{{`SELECT count(*) FROM kid_null`, 0}, {`SELECT count(*) FROM grandkid`, 0}, {`SELECT max(id) FROM kid`, 1}, {`SELECT count(*) FROM selfref`, 1}} {
		if n := queryOne[int](t, p.pdb, c.q); n != c.want {
			t.Errorf("peer: %s = %d, want %d", c.q, n, c.want)
		}
	}
}

// TestReplicaIdentityIndexDropped: a table whose replica identity is a unique index (REPLICA
// IDENTITY USING INDEX) has none once that index is dropped (PostgreSQL: "the same as
// NOTHING"), and UPDATE and DELETE on it fail while it is published — plain PostgreSQL takes
// them. DDL through the shim that drops it must leave the table a replica identity.
func TestReplicaIdentityIndexDropped(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE ri (id int PRIMARY KEY, u int NOT NULL CONSTRAINT ri_u UNIQUE, v text)`,
		`ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_u`,
		`CREATE TABLE ri2 (u int NOT NULL, v text)`,
		`CREATE UNIQUE INDEX ri2_u ON ri2 (u)`,
		`ALTER TABLE ri2 REPLICA IDENTITY USING INDEX ri2_u`,
		`INSERT INTO ri VALUES (1, 10, 'a'), (2, 20, 'b')`,
		`INSERT INTO ri2 VALUES (1, 'a'), (2, 'b')`,
		`CREATE TABLE ri3 (id int PRIMARY KEY, u int NOT NULL)`,
		`CREATE UNIQUE INDEX ri3_u ON ri3 (u)`,
		`ALTER TABLE ri3 REPLICA IDENTITY USING INDEX ri3_u`,
		`DROP INDEX ri3_u`,
		`INSERT INTO ri3 VALUES (1, 1)`)
	for _, q := range []string{
		`UPDATE ri3 SET u = 2`,
		`UPDATE ri SET v = 'c' WHERE id = 1`,
		`ALTER TABLE ri DROP CONSTRAINT ri_u`,
		`UPDATE ri SET v = 'd' WHERE id = 1`,
		`DELETE FROM ri WHERE id = 2`,
		`DROP INDEX ri2_u`,
		`UPDATE ri2 SET v = 'c' WHERE u = 1`,
		`DELETE FROM ri2 WHERE u = 2`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	// A table with a key goes back to it; one without gets FULL.
	q := `SELECT string_agg(relname || ' ' || relreplident::text, ', ' ORDER BY relname) FROM pg_class WHERE relname IN ('ri', 'ri2', 'ri3')`
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if got, want := queryOne[string](t, db, q), "ri d, ri2 f, ri3 d"; got != want {
			t.Errorf("replica identities %q, want %q", got, want)
		}
	}
}
