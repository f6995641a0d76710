package txshim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestVerify: Verify finds two databases with the same rows identical, whatever order the rows
// were written in, and names each kind of difference — down to the keys of a keyed table, at
// most diffKeysMax of them. UNLOGGED tables, whose rows are never shipped, are left out.
func TestVerify(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`,
		`CREATE TABLE two (a text, b int, c jsonb, PRIMARY KEY (a, b))`,
		`CREATE TABLE nokey (x text)`,
		`CREATE TABLE empty (id int PRIMARY KEY)`,
		`CREATE TABLE nocols ()`,                          // its rows are counted
		`CREATE UNLOGGED TABLE cache (k int PRIMARY KEY)`) // not shipped: left out
	// The same rows, written in different orders (and, on the peer, moved by an update).
	p.local.Exec(t, `INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	p.peer.Exec(t, `INSERT INTO kv SELECT g, 'x' FROM generate_series(100, 1, -1) g`)
	p.peer.Exec(t, `UPDATE kv SET v = 'v' || k`)
	p.local.Exec(t, `INSERT INTO two VALUES ('a', 1, '{"x": 1}'), ('b''q', 2, NULL), ('', 3, '[]')`)
	p.peer.Exec(t, `INSERT INTO two VALUES ('', 3, '[]'), ('b''q', 2, NULL), ('a', 1, '{"x": 1}')`)
	p.local.Exec(t, `INSERT INTO nokey VALUES ('a'), ('a'), ('b'), (NULL)`)
	p.peer.Exec(t, `INSERT INTO nokey VALUES (NULL), ('b'), ('a'), ('a')`)
	verify := func() []string {
		t.Helper()
		diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
		if err != nil {
			t.Fatal(err)
		}
		return diffs
	}
	if diffs := verify(); len(diffs) != 0 {
		t.Fatalf("Verify of identical databases: %q", diffs)
	}

	p.peer.Exec(t, `UPDATE kv SET v = 'changed' WHERE k = 42`)
	p.local.Exec(t, `INSERT INTO kv VALUES (101, 'local only')`)
	p.peer.Exec(t, `INSERT INTO kv VALUES (0, 'peer only')`)
	p.peer.Exec(t, `UPDATE two SET c = '{"x": 2}' WHERE a = 'a'`)
	p.peer.Exec(t, `UPDATE nokey SET x = 'c' WHERE ctid = (SELECT ctid FROM nokey WHERE x = 'a' LIMIT 1)`) // {a a b NULL} vs {a c b NULL}
	p.local.Exec(t, `INSERT INTO empty SELECT generate_series(1, 7)`)
	p.local.Exec(t, `INSERT INTO nocols DEFAULT VALUES`)
	p.local.Exec(t, `CREATE TABLE extra (id int)`)
	p.local.Exec(t, `INSERT INTO cache VALUES (1)`)
	want := []string{
		`table "public"."extra" exists only on the local database`, // a definition: named as install names it
		"table public.empty has 7 rows on the local database but 0 on the peer: key (1) only on the local database, key (2) only on the local database, " +
			"key (3) only on the local database, key (4) only on the local database, key (5) only on the local database, and more",
		"table public.kv has 101 rows on the local database but 101 on the peer",
		"table public.nocols has 1 rows on the local database but 0 on the peer",
		"table public.nokey has 4 rows on both databases but their contents differ",
		`table public.two has 3 rows on both databases but their contents differ: key (a,1) differs`,
	}
	diffs := verify()
	slices.Sort(diffs)
	// kv's counts agree (one row more on each side): its line is checked for its keys below.
	for i, d := range diffs {
		if strings.HasPrefix(d, "table public.kv ") {
			if !strings.Contains(d, "their contents differ: key (0) only on the peer, key (101) only on the local database, key (42) differs") {
				t.Errorf("kv: %q", d)
			}
			diffs[i] = want[2]
		}
	}
	if !slices.Equal(diffs, want) {
		t.Errorf("Verify:\n%s\nwant:\n%s", strings.Join(diffs, "\n"), strings.Join(want, "\n"))
	}
}

// TestVerifyColumnTypes: a column whose type differs between the databases is a difference,
// even when the rows read the same as text.
func TestVerifyColumnTypes(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.local.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v int)`)
	p.peer.Exec(t, `CREATE TABLE t (id int PRIMARY KEY, v bigint)`)
	p.both(t, `INSERT INTO t VALUES (1, 10), (2, 20)`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`column "public"."t"."v" is integer on the local database but bigint on the peer`}
	if !slices.Equal(diffs, want) {
		t.Fatalf("Verify: %q, want %q", diffs, want)
	}
}

// TestVerifyRowSecurity: a verify whose database user a row-level security policy applies to
// (here the table's owner, under FORCE ROW LEVEL SECURITY) fails, rather than comparing the rows
// the policy lets it see: filtered, it called databases identical that differ (the local row
// 50 missing on the peer).
func TestVerifyRowSecurity(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE ROLE owner LOGIN`,
		`CREATE TABLE kv (k int PRIMARY KEY, v text)`,
		`ALTER TABLE kv OWNER TO owner`,
		`ALTER TABLE kv ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE kv FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY low ON kv USING (k < 10)`,
		`INSERT INTO kv VALUES (1, 'a')`)
	p.local.Exec(t, `INSERT INTO kv VALUES (50, 'b')`)
	local := strings.Replace(p.local.DSN("app"), "://"+pgtest.Superuser+"@", "://owner@", 1)
	diffs, err := Verify(capCtx(t, 20*time.Second), local, p.peer.DSN("app"))
	t.Logf("verify as the owner under its policy: %q, %v", diffs, err)
	if err == nil && len(diffs) == 0 {
		t.Fatal("verify under a row-level security policy called differing databases identical")
	}
	diffs, err = Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil || len(diffs) == 0 {
		t.Fatalf("verify as the superuser: %q, %v; want the difference named", diffs, err)
	}
}

// TestVerifyRewriteAfterSnapshot: TRUNCATE and the table-rewriting forms of ALTER TABLE are not
// MVCC-safe — once committed, a table reads empty to a snapshot taken before them. A
// verification compares snapshots read long after they were taken (a full read of both
// databases; after a catch-up, once commits go on again), so such DDL through the shim, which
// commits on both databases meanwhile, made two tables whose rows differed read empty on both
// sides: "identical". It must not call them identical (a difference, or an error: not compared).
func TestVerifyRewriteAfterSnapshot(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v int)`, `CREATE TABLE gone (k int PRIMARY KEY)`)
	p.local.Exec(t, `INSERT INTO kv VALUES (1, 10), (2, 20)`)
	p.peer.Exec(t, `INSERT INTO kv VALUES (1, 10), (2, 99)`) // differs at key 2
	p.local.Exec(t, `INSERT INTO gone VALUES (1), (2)`)      // differs: the peer lacks its rows
	ctx := capCtx(t, 30*time.Second)
	snaps, err := beginVerify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.close()
	// After the snapshots, before the comparison reads the tables: DDL shipped to both.
	p.both(t, `ALTER TABLE kv ALTER COLUMN v TYPE bigint USING v::bigint`, `ALTER TABLE kv ALTER COLUMN v TYPE int`,
		`TRUNCATE gone`)
	diffs, err := snaps.compare(ctx)
	t.Logf("compare: %q, %v", diffs, err)
	if err == nil && len(diffs) == 0 {
		t.Fatal("verify called tables identical whose rows differed at its snapshots (rewritten or truncated after them: read empty)")
	}
}

// TestVerifyKeyNotPrintable: a differing row whose key holds a newline or a terminal's escape
// is named on one line, its key quoted; a printable key is named as PostgreSQL writes it.
func TestVerifyKeyNotPrintable(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k text PRIMARY KEY, v int)`)
	p.local.Exec(t, `INSERT INTO kv VALUES (E'a\nb', 1), (E'\x1b[2Jx', 1), ('plain é', 1)`)
	p.peer.Exec(t, `INSERT INTO kv VALUES (E'a\nb', 2), (E'\x1b[2Jx', 2), ('plain é', 2)`)
	diffs, err := Verify(capCtx(t, 20*time.Second), p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	want := `table public.kv has 3 rows on both databases but their contents differ: key "(\x1b[2Jx)" differs, key "(\"a\nb\")" differs, key ("plain é") differs`
	if len(diffs) != 1 || diffs[0] != want {
		t.Fatalf("Verify: %q\nwant: %q", diffs, want)
	}
}
