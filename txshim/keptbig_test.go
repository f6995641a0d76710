package txshim

import "testing"

// TestApplyKeyedDomainHugeValue: an update by key that writes a column of a domain type with a
// text value over half of PostgreSQL's 1 GB allocation limit is applied on the peer too: the
// comparison with the value the peer's row holds (kept) must not quote the value, which takes
// twice its size.
func TestApplyKeyedDomainHugeValue(t *testing.T) {
	skipHugeValues(t)
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN dt AS text`,
		`CREATE TABLE kh (id int PRIMARY KEY, c dt)`,
		`INSERT INTO kh VALUES (1, 'a')`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.kh SET c = repeat('x', 540000000) WHERE id = 1`)
	// Not requireSame: the checksum of so large a row outlasts its timeout on a loaded machine.
	if n := queryOne[int](t, p.pdb, `SELECT octet_length(c) FROM kh WHERE id = 1`); n != 540000000 {
		t.Errorf("the peer's value is %d bytes long, want 540000000", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyKeyedDomainNullKept: kept tells a NULL from any value, the empty string and a
// composite of NULL fields included: a row holding NULL, which a constraint added NOT VALID
// refuses, is left as it is by an update by key of another column, and one set from NULL to
// the empty string is written.
func TestApplyKeyedDomainNullKept(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TYPE pr AS (a int, b int)`,
		`CREATE DOMAIN nt AS text`, `CREATE DOMAIN np AS pr`,
		`CREATE TABLE kn0 (id int PRIMARY KEY, c nt, r np, y int)`,
		`INSERT INTO kn0 VALUES (1, NULL, NULL, 0), (2, '', ROW(NULL, NULL), 0), (3, NULL, NULL, 0), (4, '', ROW(NULL, NULL), 0)`,
		`ALTER DOMAIN nt ADD CHECK (VALUE IS NOT NULL) NOT VALID`,
		`ALTER DOMAIN np ADD CHECK (num_nulls(VALUE) = 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE public.kn0 SET y = 1 WHERE id IN (1, 2)`,
		`UPDATE public.kn0 SET c = '', r = ROW(NULL, NULL) WHERE id = 3`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kn0 WHERE c IS NOT DISTINCT FROM '' AND num_nulls(r) = 0 OR id = 1 AND c IS NULL`); n != 4 {
		t.Errorf("%d rows of the peer as expected, want 4", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
