package txshim

import "testing"

// TestApplyKeyTextCompareRegclass: a key compared by its text (a composite with a field of a
// domain with a CHECK, holding a NULL; or with a field of a domain with a constraint added NOT
// VALID) is spelled by the walsender under its search_path (pg_catalog) and by the apply
// session under the peer's: a regclass field is "public.t" in one and "t" in the other, and the
// peer found no row for an update that the typed compare found before 0e5015a and d6ed6cc (a
// NULL passes CHECK (VALUE > 0); 1 meets the NOT VALID constraint).
func TestApplyKeyTextCompareRegclass(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posr AS int CHECK (VALUE > 0)`,
		`CREATE DOMAIN posv AS int`,
		`CREATE TABLE t (x int)`,
		`CREATE TYPE pr AS (r regclass, n posr)`,
		`CREATE TYPE pv AS (r regclass, n posv)`,
		`CREATE TABLE kr (k pr PRIMARY KEY, v int)`,
		`CREATE TABLE kv (k pv PRIMARY KEY, v int)`,
		`INSERT INTO kr VALUES (ROW('t', NULL), 0), (ROW('t', 1), 0)`,
		`INSERT INTO kv VALUES (ROW('t', 1), 0)`,
		`ALTER DOMAIN posv ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kr SET v = 1`,
		`UPDATE kv SET v = 1`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kr WHERE v = 1`); n != 2 {
		t.Errorf("the peer's kr has %d rows updated, want 2", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
