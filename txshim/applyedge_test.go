package txshim

import (
	"testing"
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
