package txshim

import "testing"

// TestApplyCompositeKeyDomainFieldNotValid: a key of a composite type with a field of a domain
// type (or of a domain over one) was read in that composite type, CAST($n AS typ), which reads
// each field in its type and so checks the domain's constraints: a key value the row holds that
// a constraint added NOT VALID refuses made the peer refuse every update and delete of that
// row.
func TestApplyCompositeKeyDomainFieldNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posk AS int`,
		`CREATE TYPE pk AS (a posk, b text)`,
		`CREATE DOMAIN dpk AS pk`,
		`CREATE TABLE kf (k pk PRIMARY KEY, v int)`,
		`CREATE TABLE kd (id int, k dpk, v int, PRIMARY KEY (id, k))`,
		`INSERT INTO kf VALUES (ROW(-1, 'a'), 0), (ROW(-2, 'b'), 0), (ROW(3, 'c'), 0)`,
		`INSERT INTO kd VALUES (1, ROW(-1, 'a'), 0), (1, ROW(-2, 'b'), 0)`,
		`ALTER DOMAIN posk ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kf SET v = 1 WHERE (k).a = -1`,
		`DELETE FROM kf WHERE (k).a = -2`,
		`UPDATE kf SET v = 1 WHERE (k).a = 3`,
		`UPDATE kd SET v = 1 WHERE (k).a = -1`,
		`DELETE FROM kd WHERE (k).a = -2`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kf WHERE v = 1`); n != 2 {
		t.Errorf("the peer's kf has %d rows updated, want 2", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestApplyArrayKeyDomainNotValid: a key of an array of a domain (of a composite with a field
// of a domain type, of a domain over such an array), or of a range over a domain, was compared
// with a parameter "=" read in the column's type, which checks the domain within: a key value
// that a constraint added NOT VALID refuses made the peer refuse every update and delete of
// that row. A key of a domain over a domain is read in the bottom type, unchecked, as before.
func TestApplyArrayKeyDomainNotValid(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN posa AS int`,
		`CREATE DOMAIN posa2 AS posa`,
		`CREATE TYPE fa AS (a posa, b text)`,
		`CREATE DOMAIN dfa AS fa[]`,
		`CREATE TYPE posar AS RANGE (subtype = posa)`,
		`CREATE TABLE ka (k posa[] PRIMARY KEY, v int)`,
		`CREATE TABLE kc (k fa[] PRIMARY KEY, v int)`,
		`CREATE TABLE kdc (k dfa PRIMARY KEY, v int)`,
		`CREATE TABLE kr (k posar PRIMARY KEY, v int)`,
		`CREATE TABLE kn (k posa2 PRIMARY KEY, v int)`,
		`CREATE DOMAIN tposa AS text`,
		`CREATE TABLE kt (k tposa[] NOT NULL, v int)`,
		`CREATE UNIQUE INDEX kt_k ON kt (k COLLATE "C")`,
		`ALTER TABLE kt REPLICA IDENTITY USING INDEX kt_k`,
		`INSERT INTO kt VALUES ('{b}', 0), ('{c}', 0)`,
		`ALTER DOMAIN tposa ADD CHECK (VALUE <> 'b' AND VALUE <> 'c') NOT VALID`,
		`INSERT INTO ka VALUES ('{-1}', 0), ('{-2}', 0)`,
		`INSERT INTO kc VALUES (ARRAY[ROW(-1, 'a')::fa], 0), (ARRAY[ROW(-2, 'b')::fa], 0)`,
		`INSERT INTO kdc VALUES (ARRAY[ROW(-1, 'a')::fa], 0), (ARRAY[ROW(-2, 'b')::fa], 0)`,
		`INSERT INTO kr VALUES ('[-2,-1)', 0), ('[-4,-3)', 0)`,
		`INSERT INTO kn VALUES (-1, 0), (-2, 0)`,
		`ALTER DOMAIN posa ADD CHECK (VALUE > 0) NOT VALID`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE ka SET v = 1 WHERE k[1] = -1`, `DELETE FROM ka WHERE k[1] = -2`,
		`UPDATE kc SET v = 1 WHERE (k[1]).a = -1`, `DELETE FROM kc WHERE (k[1]).a = -2`,
		`UPDATE kdc SET v = 1 WHERE (k[1]).a = -1`, `DELETE FROM kdc WHERE (k[1]).a = -2`,
		`UPDATE kr SET v = 1 WHERE lower(k) = -2`, `DELETE FROM kr WHERE lower(k) = -4`,
		`UPDATE kn SET v = 1 WHERE k = -1`, `DELETE FROM kn WHERE k = -2`,
		`UPDATE kt SET v = 1 WHERE k[1] = 'b'`, `DELETE FROM kt WHERE k[1] = 'c'`)
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
