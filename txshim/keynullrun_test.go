package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// TestApplyRunKeyNotNullDomainNull: a catch-up run (several transactions in one pipeline) finds
// rows by the same conditions as one apply: a key holding a NULL of a NOT NULL domain is
// compared by its text in each transaction of the run, other keys in their type, after the
// table was looked up once (no code change: guard for 36bb50d).
func TestApplyRunKeyNotNullDomainNull(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE DOMAIN nn AS int NOT NULL`,
		`CREATE TYPE pn AS (a nn, b text)`,
		`CREATE TABLE src (x nn)`,
		`CREATE TABLE kf (k pn PRIMARY KEY, v int)`,
		`INSERT INTO kf SELECT ROW((SELECT x FROM src), 'a')::pn, 0`,
		`INSERT INTO kf SELECT ROW((SELECT x FROM src), 'b')::pn, 0`,
		`INSERT INTO kf VALUES (ROW(1, 'c'), 0)`)
	installPair(t, p)
	ctx := capCtx(t, 20*time.Second)
	a, err := dialApply(ctx, p.peer.DSN("app"), "a", originName("a", 9), applyAppName, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	typ := queryOne[uint32](t, p.pdb, `SELECT 'pn'::regtype::oid`)
	rel := &Relation{ID: 1, Namespace: "public", Name: "kf", ReplicaIdentity: 'd',
		Columns: []RelColumn{{Name: "k", Key: true, TypeOID: typ, TypeMod: -1}, {Name: "v", TypeOID: 23, TypeMod: -1}}}
	v := func(s string) Value { return Value{Kind: ValueText, Data: []byte(s)} }
	changes := [][]Change{
		{{Kind: ChangeUpdate, Rel: rel, New: []Value{v("(,a)"), v("1")}}},
		{{Kind: ChangeUpdate, Rel: rel, New: []Value{v("(1,c)"), v("1")}}, {Kind: ChangeDelete, Rel: rel, Old: []Value{v("(,b)"), {Kind: ValueNull}}}},
		{{Kind: ChangeUpdate, Rel: rel, New: []Value{v("(,a)"), v("2")}}},
	}
	var txns []*Txn
	var gids []string
	for i, cs := range changes {
		txns = append(txns, &Txn{XID: uint32(100 + i), EndLSN: pglogrepl.LSN(0x1000 * (i + 1)), Time: time.Now(), Changes: cs})
		gids = append(gids, plainGID("a", uint32(100+i)))
	}
	if err := a.applyRun(ctx, txns, gids, 0); err != nil {
		t.Fatalf("applyRun = %v", err)
	}
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(format('%s=%s', k, v), ' ' ORDER BY (k).b) FROM kf`); got != "(,a)=2 (1,c)=1" {
		t.Errorf("the peer's kf after the run: %s, want (,a)=2 (1,c)=1", got)
	}
}
