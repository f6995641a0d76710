package txshim

import "testing"

// TestApplyKeyNotNullDomainNull: a NOT NULL domain is not the only way a key's value within a
// composite or an array escapes its domain besides a constraint added NOT VALID: a field or an
// element of a NOT NULL domain can be NULL (a scalar subquery that finds no row is NULL of the
// domain, uncoerced, so unchecked), and PostgreSQL stores it. Read in its type, CAST($n AS pk)
// or the array's parameter, the key was checked against the domain: the peer refused every
// update and delete of such a row ("domain nn does not allow null values"). So too for a
// domain whose CHECK refuses NULL (cn).
func TestApplyKeyNotNullDomainNull(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE DOMAIN nn AS int NOT NULL`,
		`CREATE DOMAIN cn AS int CHECK (VALUE IS NOT NULL)`,
		`CREATE TYPE pn AS (a nn, b text)`,
		`CREATE TYPE pc AS (a cn, b text)`,
		`CREATE TABLE srcc (x cn)`,
		`CREATE TABLE kc (k pc PRIMARY KEY, v int)`,
		`INSERT INTO kc SELECT ROW((SELECT x FROM srcc), 'a')::pc, 0`,
		`CREATE TABLE src (x nn)`,
		`CREATE TABLE kf (k pn PRIMARY KEY, v int)`,
		`CREATE TABLE ka (k nn[] PRIMARY KEY, v int)`,
		`INSERT INTO kf SELECT ROW((SELECT x FROM src), 'a')::pn, 0`,
		`INSERT INTO kf SELECT ROW((SELECT x FROM src), 'b')::pn, 0`,
		`INSERT INTO kf VALUES (ROW(1, 'c'), 0)`,
		`INSERT INTO ka SELECT ARRAY[(SELECT x FROM src)], 0`,
		`INSERT INTO ka SELECT ARRAY[(SELECT 1::nn), (SELECT x FROM src)], 0`,
		`INSERT INTO ka VALUES ('{1}', 0)`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`UPDATE kc SET v = 1`,
		`UPDATE kf SET v = 1 WHERE (k).b = 'a'`,
		`DELETE FROM kf WHERE (k).b = 'b'`,
		`UPDATE kf SET v = 1 WHERE (k).b = 'c'`,
		`UPDATE ka SET v = 1 WHERE cardinality(k) = 1 AND k[1] IS NULL`,
		`DELETE FROM ka WHERE cardinality(k) = 2`,
		`UPDATE ka SET v = 1 WHERE k = '{1}'`)
	requireSame(t, p)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM kf WHERE v = 1`); n != 2 {
		t.Errorf("the peer's kf has %d rows updated, want 2", n)
	}
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// TestMayHoldNull: every way an output function writes a NULL field or element is seen.
func TestMayHoldNull(t *testing.T) {
	t.Parallel()
	for text, want := range map[string]bool{
		"(,a)": true, "(1,)": true, "(1,,b)": true, "()": true, "{NULL}": true, "{1,NULL}": true,
		`{"(,a)"}`: true, `("(1,)",b)`: true,
		"(1,a)": false, "{1,2}": false, `("",b)`: false, `{"(1,a)"}`: false, "[1,5)": false,
	} {
		if got := mayHoldNull(Value{Kind: ValueText, Data: []byte(text)}); got != want {
			t.Errorf("mayHoldNull(%s) = %v, want %v", text, got, want)
		}
	}
	if !mayHoldNull(Value{Kind: ValueBinary, Data: []byte{1}}) {
		t.Error("mayHoldNull of a binary value = false, want true")
	}
}
