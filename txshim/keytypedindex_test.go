package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestApplyKeyTypedCompareKeepsIndex: a key with no domain inside, or one whose value holds no
// NULL (mayHoldNull), is still compared in its type, where the key's index serves (EXPLAIN of
// matchRow's condition on a large table); and every NULL within a value as PostgreSQL spells it
// (nested composites and arrays, quoting, bounds, several dimensions) is seen by mayHoldNull.
func TestApplyKeyTypedCompareKeepsIndex(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE DOMAIN nn AS int NOT NULL`,
		`CREATE DOMAIN cp AS int CHECK (VALUE > 0)`,
		`CREATE TYPE pl AS (a int, b text)`,
		`CREATE TYPE pn AS (a nn, b text)`,
		`CREATE TYPE pc AS (a cp, b text)`,
		`CREATE TABLE kpl (k pl PRIMARY KEY, v int)`,
		`CREATE TABLE kpn (k pn PRIMARY KEY, v int)`,
		`CREATE TABLE kpc (k pc PRIMARY KEY, v int)`,
		`CREATE TABLE kar (k int[] PRIMARY KEY, v int)`,
		`CREATE TABLE kan (k nn[] PRIMARY KEY, v int)`,
		`CREATE TABLE ktx (k text PRIMARY KEY, v int)`)
	for _, tb := range []string{"pl", "pn", "pc"} {
		if _, err := p.pdb.Exec(`INSERT INTO k` + tb + ` SELECT ROW(i, 'x' || i)::` + tb + `, 0 FROM generate_series(1, 20000) i`); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{
		`INSERT INTO kar SELECT ARRAY[i, i + 1], 0 FROM generate_series(1, 20000) i`,
		`INSERT INTO kan SELECT ARRAY[i, i + 1], 0 FROM generate_series(1, 20000) i`,
		`INSERT INTO ktx SELECT 'x' || i, 0 FROM generate_series(1, 20000) i`,
		`ANALYZE`,
	} {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	installPair(t, p)
	ctx := capCtx(t, 30*time.Second)
	a, err := dialApply(ctx, p.peer.DSN("app"), "a", originName("a", 9), applyAppName, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	col := func(oid uint32) []RelColumn {
		return []RelColumn{{Name: "k", Key: true, TypeOID: oid, TypeMod: -1}, {Name: "v", TypeOID: 23, TypeMod: -1}}
	}
	oid := func(typ string) uint32 { return queryOne[uint32](t, p.pdb, `SELECT $1::regtype::oid`, typ) }
	cases := []struct {
		table, typ, key string
		index           bool
	}{
		{"kpl", "pl", "(5,x5)", true},
		{"kpl", "pl", "(,x5)", true},
		{"kpn", "pn", "(5,x5)", true},
		{"kpc", "pc", "(5,x5)", true},
		{"kpc", "pc", "(,x5)", false},
		{"kar", "int[]", "{5,6}", true},
		{"kar", "int[]", "{5,NULL}", true},
		{"kan", "nn[]", "{5,6}", true},
		{"ktx", "text", "x5", true},
	}
	var rels []*Relation
	for _, c := range cases {
		rels = append(rels, &Relation{ID: 1, Namespace: "public", Name: c.table, ReplicaIdentity: 'd', Columns: col(oid(c.typ))})
	}
	tx, stop := a.startApply(ctx, "tandem_a_plain_1", 0)
	prs, err := tx.peerRels(rels)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		var params []any
		where, err := matchRow(rels[i], []Value{{Kind: ValueText, Data: []byte(c.key)}, {Kind: ValueNull}}, false, prs[i],
			func(v Value) string { params = append(params, string(v.Data)); return "$1" })
		if err != nil {
			t.Fatal(err)
		}
		rows, err := p.pdb.Query(`EXPLAIN SELECT FROM ONLY `+c.table+` WHERE `+where, params...)
		if err != nil {
			t.Fatalf("%s %s: %v", c.table, where, err)
		}
		var plan []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, l)
		}
		rows.Close()
		if got := strings.Contains(strings.Join(plan, "\n"), "Index"); got != c.index {
			t.Errorf("%s key %s: WHERE %s: plan %q, index used %v, want %v", c.table, c.key, where, plan, got, c.index)
		}
	}
	// Every NULL within a value, as the peer spells it, is seen.
	for _, e := range []string{
		`ROW(NULL, NULL)::pl`,
		`ROW(ROW(NULL, 'a"b')::pl, 'c')`,
		`ROW(ROW(1, NULL)::pl, 'c,d')`,
		`ARRAY[ROW(NULL, 'x,y')::pl]`,
		`ARRAY[ROW(1, NULL)::pl, ROW(2, 'q"\')::pl]`,
		`'[2:3]={NULL,1}'::int[]`,
		`ARRAY[[1,NULL],[2,3]]`,
		`ROW(ARRAY[1,NULL], 'x')`,
		`ROW(ARRAY[ROW(NULL, 'a')::pl], ' ')`,
		`ARRAY[ARRAY[ROW(1, NULL)::pl], ARRAY[ROW(NULL, ' ')::pl]]`,
	} {
		s := queryOne[string](t, p.pdb, `SELECT format('%s', `+e+`)`)
		if !mayHoldNull(Value{Kind: ValueText, Data: []byte(s)}) {
			t.Errorf("mayHoldNull(%s) = false for %s", s, e)
		}
	}
}
