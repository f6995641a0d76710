package txshim

import "testing"

// TestInstallCollationDefinitions: a collation of the application's schemas that a column
// uses was compared by its name only: one made deterministic on the local database and
// nondeterministic (case-insensitive) on the peer was taken as the same, though the peer's
// primary key then refuses 'A' beside 'a', which the local database holds both of — every
// such row shipped was refused, and a resync with it. Install and verify must name it.
func TestInstallCollationDefinitions(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = true)`)
	p.peer.Exec(t, `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`)
	p.both(t, `CREATE TABLE t (k text COLLATE ci PRIMARY KEY)`, `INSERT INTO t VALUES ('a')`)
	if refuses(t, p.ldb, `INSERT INTO t VALUES ('A')`) || !refuses(t, p.pdb, `INSERT INTO t VALUES ('A')`) {
		t.Fatal("the two collations do not differ as the test expects")
	}
	p.ldb.Exec(`DELETE FROM t WHERE k = 'A'`)
	requireCollationDiff(t, p, "app", `collation "public"."ci"`)
}
