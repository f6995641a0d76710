package txshim

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// startApplyPair starts a local and a peer cluster, runs setup on both, installs Tandem for
// site "a" (term 1) and starts a Shipper.
func startApplyPair(t *testing.T, setup ...string) (*capPair, *Shipper) {
	t.Helper()
	p := startCapPair(t)
	p.both(t, setup...)
	installPair(t, p)
	return p, startShipper(t, p)
}

// refusedAsDivergence prepares stmts as gid on the local database, expects the peer to refuse
// them as a divergence, and rolls gid back.
func refusedAsDivergence(t *testing.T, p *capPair, s *Shipper, gid string, stmts ...string) {
	t.Helper()
	prepareLocal(t, p.ldb, gid, stmts...)
	err := s.Prepare(capCtx(t, 10*time.Second), gid)
	var pe *PeerError
	if !errors.As(err, &pe) || !pe.Definite || !strings.Contains(err.Error(), "divergence") {
		t.Errorf("Prepare = %v, want a definite divergence PeerError", err)
	}
	if preparedOn(t, p.pdb, gid) {
		t.Error("a diverged transaction is prepared on the peer")
	}
	p.local.Exec(t, "ROLLBACK PREPARED "+sqlLiteral(gid))
	s.Rollback(gid)
}

// TestApplyNoOpUpdate: an UPDATE that sets no column the peer could write — every column a key
// that stayed as it was, an unchanged TOASTed value, or a GENERATED ALWAYS column — is applied
// (as an update that must hit exactly one row), not refused as an apply that cannot be built.
func TestApplyNoOpUpdate(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE pair (a int, b int, PRIMARY KEY (a, b))`,
		`CREATE TABLE toasty (id int PRIMARY KEY, big text)`,
		`ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL`,
		`CREATE TABLE only_ident (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, g int GENERATED ALWAYS AS (id * 2) STORED)`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO pair VALUES (1, 2), (3, 4)`,
		`INSERT INTO toasty VALUES (1, repeat('x', 10000))`,
		`INSERT INTO only_ident DEFAULT VALUES`)

	dualCommit(t, p, s, gidFor("a", 1, 2),
		`INSERT INTO pair VALUES (1, 2) ON CONFLICT (a, b) DO UPDATE SET a = EXCLUDED.a`,
		`UPDATE toasty SET big = big`,
		`UPDATE only_ident SET g = DEFAULT`)
	requireSame(t, p)

	// A no-op update still finds its row: a missing one is divergence.
	p.pdb.Exec(`DELETE FROM pair WHERE a = 3`)
	refusedAsDivergence(t, p, s, gidFor("a", 1, 3), `INSERT INTO pair VALUES (3, 4) ON CONFLICT (a, b) DO UPDATE SET a = EXCLUDED.a`)
	p.pdb.Exec(`DELETE FROM toasty`)
	refusedAsDivergence(t, p, s, gidFor("a", 1, 4), `UPDATE toasty SET big = big`)
	p.pdb.Exec(`DELETE FROM only_ident`)
	refusedAsDivergence(t, p, s, gidFor("a", 1, 5), `UPDATE only_ident SET g = DEFAULT`)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}

// pinnedRows runs q, which returns one text column, on db under fixed session settings, so that
// both databases' rows read the same when their values are the same.
func pinnedRows(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	ctx := capCtx(t, 10*time.Second)
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET datestyle = ISO; SET timezone = UTC; SET intervalstyle = postgres;
SET extra_float_digits = 3; SET bytea_output = hex; SET search_path = pg_catalog`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s sql.NullString
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s.String)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// TestApplySessionSettings: values reach the peer as they are on the local database whatever
// either database's session defaults (DateStyle, IntervalStyle, extra_float_digits,
// bytea_output, search_path, TimeZone), and rows of a REPLICA IDENTITY FULL table are found on
// the peer by their values, not by their text under the peer's settings.
func TestApplySessionSettings(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		`CREATE SCHEMA other`,
		`CREATE TABLE other.x (id int PRIMARY KEY)`,
		`CREATE TABLE vals (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz, iv interval, f8 float8, f4 float4, b bytea, rc regclass, n numeric)`,
		`CREATE TABLE full_t (d date, tz timestamptz, iv interval, f8 float8, j json, pt point, b bytea, n numeric, tags text[])`,
		`ALTER TABLE full_t REPLICA IDENTITY FULL`)
	for _, q := range []string{
		`ALTER DATABASE app SET datestyle = 'SQL, DMY'`,
		`ALTER DATABASE app SET intervalstyle = 'sql_standard'`,
		`ALTER DATABASE app SET extra_float_digits = 0`,
		`ALTER DATABASE app SET bytea_output = 'escape'`,
		`ALTER DATABASE app SET search_path = other, public`,
		`ALTER DATABASE app SET timezone = 'Europe/Berlin'`,
	} {
		p.local.Exec(t, q)
	}
	for _, q := range []string{
		`ALTER DATABASE app SET timezone = 'Asia/Tokyo'`,
		`ALTER DATABASE app SET extra_float_digits = 0`,
		`ALTER DATABASE app SET intervalstyle = 'iso_8601'`,
		`ALTER DATABASE app SET datestyle = 'Postgres, MDY'`,
	} {
		p.peer.Exec(t, q)
	}
	installPair(t, p)
	s := startShipper(t, p)

	const (
		valsQ = `SELECT ROW(id, d, ts, tz, iv, f8, f4, b, rc, n)::text FROM public.vals ORDER BY id`
		fullQ = `SELECT ROW(d, tz, iv, f8, j, pt, b, n, tags)::text FROM public.full_t ORDER BY tz`
	)
	same := func(what, q string) {
		t.Helper()
		if l, r := pinnedRows(t, p.ldb, q), pinnedRows(t, p.pdb, q); l != r {
			t.Errorf("%s differ:\nlocal:\n%s\npeer:\n%s", what, l, r)
		}
	}
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO public.vals VALUES
  (1, '2024-01-02', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456+00', '-1 days +02:03:04', 0.1::float8 + 0.2::float8, 3.3::float4 + 0.01::float4, '\x00ff5c'::bytea, 'other.x'::regclass, 1.50),
  (2, '1999-12-31', '2000-02-29 23:59:59', '2000-02-29 23:59:59+05:30', '1 year 2 mons -3 days -00:00:01.5', 1e300, 'NaN', '', 'public.vals'::regclass, 'NaN')`,
		`INSERT INTO public.full_t VALUES
  ('2024-01-02', '2024-01-02 03:04:05.123456+00', '-1 days +02:03:04', 0.1::float8 + 0.2::float8, '{"a": 1,  "b": [1, 2]}', '(0.1,0.30000000000000004)', '\x00ff', 1.50, '{x,"y z"}'),
  ('2024-03-04', '2024-03-04 05:06:07+00', '3 days', 1, '[]', '(1,2)', '\x01', 2, '{}')`)
	same("inserted rows", valsQ)
	same("inserted REPLICA IDENTITY FULL rows", fullQ)

	dualCommit(t, p, s, gidFor("a", 1, 2),
		`UPDATE public.full_t SET n = n + 1, tz = tz + interval '1 hour' WHERE d = '2024-01-02'`,
		`DELETE FROM public.full_t WHERE d = '2024-03-04'`,
		`UPDATE public.vals SET d = d + 1, iv = iv * 2 WHERE id = 1`)
	same("updated rows", valsQ)
	same("REPLICA IDENTITY FULL rows after an update and a delete", fullQ)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM public.full_t`); n != 1 {
		t.Errorf("full_t has %d rows on the peer, want 1", n)
	}
}

// TestApplyTruncateOnly: the peer truncates exactly the tables pgoutput lists — TRUNCATE ONLY of
// an inheritance parent leaves its children — with RESTART IDENTITY and CASCADE as on the local
// database, and partitioned tables (which arrive as their leaf partitions) too.
func TestApplyTruncateOnly(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE inh_parent (id int PRIMARY KEY, v text)`,
		`CREATE TABLE inh_child (extra int) INHERITS (inh_parent)`,
		`ALTER TABLE inh_child ADD PRIMARY KEY (id)`,
		`CREATE TABLE seq_t (id serial PRIMARY KEY, v text)`,
		`CREATE TABLE fk_parent (id int PRIMARY KEY)`,
		`CREATE TABLE fk_child (id int PRIMARY KEY, p int REFERENCES fk_parent)`,
		`CREATE TABLE parted (id int, region text, PRIMARY KEY (id, region)) PARTITION BY LIST (region)`,
		`CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu')`,
		`CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us') PARTITION BY RANGE (id)`,
		`CREATE TABLE parted_us_lo PARTITION OF parted_us FOR VALUES FROM (0) TO (100)`,
		`CREATE TABLE parted_us_hi PARTITION OF parted_us FOR VALUES FROM (100) TO (1000)`)
	fill := []string{
		`INSERT INTO inh_parent VALUES (1, 'parent')`,
		`INSERT INTO inh_child VALUES (2, 'child', 7)`,
		`INSERT INTO seq_t (v) VALUES ('a'), ('b')`,
		`INSERT INTO fk_parent VALUES (1)`,
		`INSERT INTO fk_child VALUES (1, 1)`,
		`INSERT INTO parted VALUES (1, 'eu'), (2, 'us'), (200, 'us')`,
	}
	count := func(db *sql.DB, table string) int {
		return queryOne[int](t, db, `SELECT count(*) FROM `+table)
	}
	dualCommit(t, p, s, gidFor("a", 1, 1), fill...)

	dualCommit(t, p, s, gidFor("a", 1, 2), `TRUNCATE ONLY inh_parent`)
	requireSame(t, p)
	if n := count(p.pdb, "inh_child"); n != 1 {
		t.Errorf("inh_child has %d rows on the peer after TRUNCATE ONLY of its parent, want 1", n)
	}

	dualCommit(t, p, s, gidFor("a", 1, 3),
		`INSERT INTO inh_parent VALUES (1, 'parent')`,
		`TRUNCATE inh_parent`,
		`TRUNCATE ONLY seq_t RESTART IDENTITY`,
		`INSERT INTO seq_t (v) VALUES ('c')`,
		`TRUNCATE fk_parent CASCADE`,
		`TRUNCATE parted_us`)
	requireSame(t, p)
	for table, want := range map[string]int{"inh_parent": 0, "seq_t": 1, "fk_child": 0, "parted": 1} {
		if n := count(p.pdb, table); n != want {
			t.Errorf("%s has %d rows on the peer, want %d", table, n, want)
		}
	}
	if id := queryOne[int](t, p.pdb, `SELECT id FROM seq_t`); id != 1 {
		t.Errorf("seq_t's row after RESTART IDENTITY has id %d on the peer, want 1", id)
	}

	dualCommit(t, p, s, gidFor("a", 1, 4), `INSERT INTO parted VALUES (3, 'us')`, `TRUNCATE parted`)
	requireSame(t, p)
	if n := count(p.pdb, "parted"); n != 0 {
		t.Errorf("parted has %d rows on the peer after TRUNCATE, want 0", n)
	}

	// Published via its root, a partitioned table is listed itself, and TRUNCATE ONLY would
	// refuse it.
	p.local.Exec(t, `ALTER PUBLICATION `+PublicationName+` SET (publish_via_partition_root = true)`)
	dualCommit(t, p, s, gidFor("a", 1, 5), `INSERT INTO parted VALUES (4, 'eu'), (5, 'us')`)
	dualCommit(t, p, s, gidFor("a", 1, 6), `TRUNCATE parted`)
	requireSame(t, p)
	if n := count(p.pdb, "parted"); n != 0 {
		t.Errorf("parted has %d rows on the peer after TRUNCATE through its root, want 0", n)
	}
}

// TestApplyIdentityChange: an UPDATE that gives a GENERATED ALWAYS identity column a new value
// (SET col = DEFAULT: a key, a column besides the key, a REPLICA IDENTITY FULL table) moves the
// peer's row to the same value; an unchanged TOASTed value and generated columns come out right,
// and a missing row is still divergence.
func TestApplyIdentityChange(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE ident_k (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text, big text, doubled int GENERATED ALWAYS AS (id * 2) STORED)`,
		`ALTER TABLE ident_k ALTER COLUMN big SET STORAGE EXTERNAL`,
		`CREATE TABLE ident_nk (k text PRIMARY KEY, seq int GENERATED ALWAYS AS IDENTITY, v text)`,
		`CREATE TABLE ident_full (seq int GENERATED ALWAYS AS IDENTITY, v text)`,
		`ALTER TABLE ident_full REPLICA IDENTITY FULL`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO ident_k (v, big) VALUES ('a', repeat('x', 10000)), ('b', 'small'), ('c', NULL)`,
		`INSERT INTO ident_nk (k, v) VALUES ('a', 'a'), ('b', 'b')`,
		`INSERT INTO ident_full (v) VALUES ('a'), ('b')`)

	dualCommit(t, p, s, gidFor("a", 1, 2),
		`UPDATE ident_k SET id = DEFAULT WHERE v = 'a'`, // big stays: an unchanged TOASTed value
		`UPDATE ident_k SET id = DEFAULT, v = 'b2' WHERE v = 'b'`,
		`UPDATE ident_k SET v = 'c2' WHERE v = 'c'`,
		`UPDATE ident_nk SET seq = DEFAULT, v = 'a2' WHERE k = 'a'`,
		`UPDATE ident_nk SET v = 'b2' WHERE k = 'b'`,
		`UPDATE ident_full SET seq = DEFAULT WHERE v = 'a'`)
	requireSame(t, p)
	const q = `SELECT string_agg(format('%s:%s:%s:%s', id, v, length(big), doubled), ' ' ORDER BY id) FROM ident_k`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != r {
		t.Errorf("ident_k differs: local %s, peer %s", l, r)
	}

	p.pdb.Exec(`DELETE FROM ident_k WHERE v = 'c2'`)
	refusedAsDivergence(t, p, s, gidFor("a", 1, 3), `UPDATE ident_k SET id = DEFAULT WHERE v = 'c2'`)
	p.pdb.Exec(`DELETE FROM ident_nk WHERE k = 'b'`)
	refusedAsDivergence(t, p, s, gidFor("a", 1, 4), `UPDATE ident_nk SET seq = DEFAULT WHERE k = 'b'`)
}

// TestApplyIgnoresPeerTimeouts: statement and lock timeouts among the peer database's defaults
// do not end an apply (as an SQL error, which the Shipper would take for a refusal): the apply
// waits for a blocked row until its watchdog ends the blocker, and the dual commit goes through.
func TestApplyIgnoresPeerTimeouts(t *testing.T) {
	t.Parallel()
	p := startAcctPair(t)
	p.peer.Exec(t, `ALTER DATABASE app SET lock_timeout = '100ms'`)
	p.peer.Exec(t, `ALTER DATABASE app SET statement_timeout = '300ms'`)
	s := startShipper(t, p)
	ctx := capCtx(t, 30*time.Second)
	blocker, err := p.pdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	for _, q := range []string{"BEGIN", "UPDATE acct SET balance = -1 WHERE id = 1"} {
		if _, err := blocker.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	dualCommit(t, p, s, gidFor("a", 1, 1), `UPDATE acct SET balance = balance + 5 WHERE id = 1`)
	requireSame(t, p)
}

// TestApplyDuplicateOnlyFromDecisionRow: a unique violation is taken for "already applied" only
// when the decision row raised it, not when a change in a later round trip of the apply holds
// the decision row's place in its round trip.
func TestApplyDuplicateOnlyFromDecisionRow(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE tally (k int PRIMARY KEY, c int)`, `INSERT INTO tally VALUES (1, 0), (2, 0), (3, 0)`)
	installPair(t, p)
	ctx := capCtx(t, 20*time.Second)
	a, err := dialApply(ctx, p.peer.DSN("app"), "a", originName("a", 9), applyAppName, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	rel := &Relation{ID: 1, Namespace: "public", Name: "tally", ReplicaIdentity: 'd',
		Columns: []RelColumn{{Name: "k", Key: true, TypeOID: 23, TypeMod: -1}, {Name: "c", TypeOID: 23, TypeMod: -1}}}
	v := func(s string) Value { return Value{Kind: ValueText, Data: []byte(s)} }
	// Round trip 1: BEGIN, the decision row (Parse, Execute: step 2), the origin; the first
	// UPDATE makes the apply look the table up, which ends it. Round trip 2: the first UPDATE
	// (Parse, Execute), the second one (Execute: step 2), which violates the key.
	txn := &Txn{XID: 7, EndLSN: 0x1000, Time: time.Now(), Changes: []Change{
		{Kind: ChangeUpdate, Rel: rel, Old: []Value{v("3"), {Kind: ValueNull}}, New: []Value{v("4"), v("0")}},
		{Kind: ChangeUpdate, Rel: rel, Old: []Value{v("1"), {Kind: ValueNull}}, New: []Value{v("2"), v("0")}},
	}}
	err = a.apply(ctx, txn, "tandem_a_plain_7", 0, endCommit)
	var pgErr *pgconn.PgError
	if errors.Is(err, errAlreadyApplied) || !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("apply = %v, want the peer's refusal (23505)", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions`); n != 0 {
		t.Errorf("%d decision rows on the peer after a refused apply", n)
	}
}

// TestTransient: refusals a retry may not meet (conflicts, timeouts, cancels) are transient;
// those that mean the databases differ, and errors that are no refusal, are not.
func TestTransient(t *testing.T) {
	t.Parallel()
	pg := func(code, msg string) error {
		return fmt.Errorf("apply x on the peer: change 1: %w", &pgconn.PgError{Code: code, Message: msg})
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{pg("40001", "could not serialize access due to concurrent update"), true},
		{pg("40P01", "deadlock detected"), true},
		{pg("57014", "canceling statement due to statement timeout"), true},
		{pg("55P03", "canceling statement due to lock timeout"), true},
		{pg("25P03", "terminating connection due to idle-in-transaction timeout"), true},
		{pg("55000", `prepared transaction with identifier "tandem_a_1_2" is busy`), true},
		{pg("40002", "integrity constraint violation"), false},
		{pg(sqlstateDivergence, "update of public.kv matched 0 rows"), false},
		{pg("23505", "duplicate key value violates unique constraint"), false},
		{pg("23503", "insert or update violates foreign key constraint"), false},
		{pg("42P01", `relation "kv" does not exist`), false},
		{pg("42703", `column "v" does not exist`), false},
		{pg("55000", "cannot update table because it does not have a replica identity"), false},
		{pg(sqlstateStaleTerm, "stale term"), false},
		{errors.New("read results from the peer: unexpected EOF"), false},
		{nil, false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestApplyAfterColumnTypeChange: after DDL through the shim changes a column's type, the rows
// written after it reach the peer as they are on the local database, on every apply connection
// (each had prepared its statements for the table before, with parameters of the old types).
func TestApplyAfterColumnTypeChange(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE TABLE retyped (id int PRIMARY KEY, a int, f real)`)
	var n uint64
	gid := func() string { n++; return gidFor("a", 1, n) }
	// Both pool connections (startShipper: Conns 2) prepare the INSERT and the UPDATE.
	for i := 1; i <= 2; i++ {
		dualCommit(t, p, s, gid(), fmt.Sprintf(`INSERT INTO retyped VALUES (%d, 1, 0.5)`, i),
			fmt.Sprintf(`UPDATE retyped SET a = 2 WHERE id = %d`, i))
	}
	const ddl = `ALTER TABLE retyped ALTER a TYPE text, ALTER f TYPE float8`
	dualCommit(t, p, s, gid(), `INSERT INTO tandem.ddl (stmt) VALUES (`+sqlLiteral(ddl)+`)`, ddl,
		`INSERT INTO retyped VALUES (10, 'ten', 0.1)`, `UPDATE retyped SET a = 'one', f = 0.3 WHERE id = 1`)
	for i := 11; i <= 12; i++ {
		dualCommit(t, p, s, gid(), fmt.Sprintf(`INSERT INTO retyped VALUES (%d, 'x%[1]d', 0.1)`, i),
			fmt.Sprintf(`UPDATE retyped SET a = 'y', f = 0.7 WHERE id = %d`, i-10))
	}
	requireSame(t, p)
}

// TestApplyDDLSearchPath: DDL through the shim runs on the peer under the search_path its
// session had on the local database, so that unqualified names make the same objects in the
// same schemas there, and the statements after it on the peer are unaffected.
func TestApplyDDLSearchPath(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE SCHEMA app`, `CREATE SCHEMA "odd, ""name"""`)
	ddl := func(stmt string) []string {
		return []string{`INSERT INTO tandem.ddl (stmt) VALUES (` + sqlLiteral(stmt) + `)`, stmt}
	}
	stmts := []string{`SET LOCAL search_path = app, public`}
	stmts = append(stmts, ddl(`CREATE TABLE items (id int PRIMARY KEY, v text)`)...)
	stmts = append(stmts, `INSERT INTO items VALUES (1, 'one')`, `SET LOCAL search_path = "odd, ""name""", app`)
	stmts = append(stmts, ddl(`CREATE TABLE tags (id int PRIMARY KEY)`)...)
	stmts = append(stmts, ddl(`ALTER TABLE items ADD COLUMN n int DEFAULT 5`)...)
	stmts = append(stmts, `INSERT INTO tags VALUES (7)`, `INSERT INTO items VALUES (2, 'two', 6)`, `UPDATE items SET v = 'uno' WHERE id = 1`)
	dualCommit(t, p, s, gidFor("a", 1, 1), stmts...)
	requireSame(t, p)
	const q = `SELECT string_agg(c.oid::regclass::text, ' ' ORDER BY c.oid::regclass::text COLLATE "C") FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tandem', 'pg_toast')`
	if got := queryOne[string](t, p.pdb, q); got != `"odd, ""name""".tags app.items` {
		t.Errorf("tables on the peer: %s", got)
	}
	dualCommit(t, p, s, gidFor("a", 1, 2), `INSERT INTO app.items VALUES (3, 'three')`)
	requireSame(t, p)

	// Recording the search path does not make a session whose path starts with a temporary
	// schema it has not made yet make one, which would keep its transaction from being prepared.
	stmts = append([]string{`SET LOCAL search_path = pg_temp, app`}, ddl(`CREATE INDEX items_v ON items (v)`)...)
	dualCommit(t, p, s, gidFor("a", 1, 3), stmts...)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'app' AND indexname = 'items_v'`); n != 1 {
		t.Error("the index made through a session whose path starts with pg_temp is not on the peer")
	}
}

// TestApplyFullRowXML: rows of a REPLICA IDENTITY FULL table with an xml column (a type with no
// equality of its own, and a cast to text that is binary but not implicit) are found on the
// peer by an UPDATE and a DELETE.
func TestApplyFullRowXML(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE DOMAIN xml_dom AS xml`, `CREATE TABLE doc (name text, body xml, d xml_dom)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO doc VALUES ('a', '<a x="1">one</a>', '<d/>'), ('b', '<b/>', NULL)`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE doc SET name = 'a2' WHERE name = 'a'`, `DELETE FROM doc WHERE name = 'b'`)
	requireSame(t, p)
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(name, ',') FROM doc`); got != "a2" {
		t.Errorf("doc on the peer holds %q, want a2", got)
	}
}

// TestApplyFullRowParentTables: a REPLICA IDENTITY FULL row of an inheritance parent, or of a
// partitioned table published via its root, is found on the peer as that one row: not also the
// row at the same ctid of a child or another partition, nor a child's row of the same values.
func TestApplyFullRowParentTables(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE inh_p (v text)`, `CREATE TABLE inh_c (w int) INHERITS (inh_p)`,
		`CREATE TABLE pt (region text, v text) PARTITION BY LIST (region)`,
		`CREATE TABLE pt_eu PARTITION OF pt FOR VALUES IN ('eu')`, `CREATE TABLE pt_us PARTITION OF pt FOR VALUES IN ('us')`)
	p.local.Exec(t, `ALTER PUBLICATION `+PublicationName+` SET (publish_via_partition_root = true)`)
	// Each table's first row is at ctid (0,1); inh_c's second row has the values of inh_p's.
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO inh_c VALUES ('c', 1), ('p', 2)`, `INSERT INTO inh_p VALUES ('p')`,
		`INSERT INTO pt VALUES ('eu', 'a'), ('us', 'b')`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE ONLY inh_p SET v = 'p2'`, `UPDATE pt SET v = 'b2' WHERE region = 'us'`)
	requireSame(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 3), `DELETE FROM ONLY inh_p`, `DELETE FROM pt WHERE region = 'eu'`)
	requireSame(t, p)
	const q = `SELECT string_agg(tableoid::regclass || ':' || v, ' ' ORDER BY tableoid::regclass::text, v) FROM (SELECT tableoid, v FROM inh_p UNION ALL SELECT tableoid, v FROM pt) x`
	if got := queryOne[string](t, p.pdb, q); got != "inh_c:c inh_c:p pt_us:b2" {
		t.Errorf("peer rows: %s", got)
	}
}

// TestApplyKeyedParentTables: a keyed row of an inheritance parent is updated and deleted on the
// peer as that one row, not also a child's row of the same key (the parent's primary key does
// not cover its children); and a partitioned table published via its root still reaches its
// partitions' rows by key.
func TestApplyKeyedParentTables(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE TABLE kp (id int PRIMARY KEY, v text)`, `CREATE TABLE kc (w int) INHERITS (kp)`,
		`ALTER TABLE kc ADD PRIMARY KEY (id)`,
		`CREATE TABLE kpt (id int PRIMARY KEY, v text) PARTITION BY RANGE (id)`,
		`CREATE TABLE kpt_lo PARTITION OF kpt FOR VALUES FROM (0) TO (10)`)
	p.local.Exec(t, `ALTER PUBLICATION `+PublicationName+` SET (publish_via_partition_root = true)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO kc VALUES (1, 'child', 7)`, `INSERT INTO kp VALUES (1, 'parent'), (2, 'parent')`,
		`INSERT INTO kpt VALUES (1, 'a'), (2, 'b')`)
	dualCommit(t, p, s, gidFor("a", 1, 2), `UPDATE ONLY kp SET v = 'parent2' WHERE id = 1`, `UPDATE kpt SET v = 'a2' WHERE id = 1`)
	requireSame(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 3), `DELETE FROM ONLY kp WHERE id = 1`, `DELETE FROM kpt WHERE id = 2`)
	requireSame(t, p)
	const q = `SELECT string_agg(tableoid::regclass || ':' || id || v, ' ' ORDER BY tableoid::regclass::text, id) FROM (SELECT tableoid, id, v FROM kp UNION ALL SELECT tableoid, id, v FROM kpt) x`
	if got := queryOne[string](t, p.pdb, q); got != "kc:1child kp:2parent kpt_lo:1a2" {
		t.Errorf("peer rows: %s", got)
	}
}

// TestApplyStatementsBounded: the statements an apply connection keeps prepared on the peer are
// bounded. A REPLICA IDENTITY FULL table's rows are found by a statement per pattern of nulls
// among their values (IS NULL or = $n), up to 2^columns of them, each holding tens of KB of the
// peer's memory for the connection's life.
func TestApplyStatementsBounded(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	// Row k has the value k in column ci where bit i of k is 0, null where it is 1.
	var cols, vals []string
	rel := &Relation{ID: 1, Namespace: "public", Name: "nulls", ReplicaIdentity: 'f'}
	for i := 0; i < 10; i++ {
		cols = append(cols, fmt.Sprintf("c%d int", i))
		vals = append(vals, fmt.Sprintf("CASE WHEN k & %d = 0 THEN k END", 1<<i))
		rel.Columns = append(rel.Columns, RelColumn{Name: fmt.Sprintf("c%d", i), TypeOID: 23, TypeMod: -1})
	}
	const rows = maxApplyStmts + 100
	p.both(t, `CREATE TABLE nulls (`+strings.Join(cols, ", ")+`)`,
		fmt.Sprintf(`INSERT INTO nulls SELECT %s FROM generate_series(0, %d) k`, strings.Join(vals, ", "), rows))
	installPair(t, p)
	ctx := capCtx(t, 60*time.Second)
	a, err := dialApply(ctx, p.peer.DSN("app"), "a", originName("a", 9), applyAppName, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	del := func(k int) Change {
		old := make([]Value, 10)
		for i := range old {
			old[i] = Value{Kind: ValueNull}
			if k&(1<<i) == 0 {
				old[i] = Value{Kind: ValueText, Data: []byte(strconv.Itoa(k))}
			}
		}
		return Change{Kind: ChangeDelete, Rel: rel, Old: old, OldFull: true}
	}
	txn := &Txn{XID: 1, EndLSN: 0x1000, Time: time.Now()}
	for k := 0; k < rows; k++ {
		txn.Changes = append(txn.Changes, del(k))
	}
	if err := a.apply(ctx, txn, plainGID("a", 1), 0, endCommit); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := a.apply(ctx, &Txn{XID: 2, EndLSN: 0x2000, Time: time.Now(), Changes: []Change{del(rows)}}, plainGID("a", 2), 0, endCommit); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM nulls`); n != 0 {
		t.Errorf("%d rows left on the peer, want 0", n)
	}
	res, err := a.conn.Exec(ctx, `SELECT count(*) FROM pg_prepared_statements`).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(string(res[0].Rows[0][0])); n > maxApplyStmts {
		t.Errorf("the apply connection holds %d prepared statements on the peer, want at most %d", n, maxApplyStmts)
	}
}

// TestApplyAfterIdentityAdded: DDL through the shim that makes a column GENERATED ALWAYS AS
// IDENTITY — which changes no column's name or type in the relation messages — is heeded by
// every apply connection, not only by the one that ran it: updates after it leave the column
// alone on the peer (PostgreSQL lets them set it only to DEFAULT).
func TestApplyAfterIdentityAdded(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE TABLE acct (k text PRIMARY KEY, seq int NOT NULL, v text)`)
	var n uint64
	gid := func() string { n++; return gidFor("a", 1, n) }
	dualCommit(t, p, s, gid(), `INSERT INTO acct VALUES ('a', 1, 'a'), ('b', 2, 'b'), ('c', 3, 'c')`)
	// Both pool connections (startShipper: Conns 2) learn the table as it is.
	for _, k := range []string{"a", "b"} {
		dualCommit(t, p, s, gid(), `UPDATE acct SET v = v || '1' WHERE k = '`+k+`'`)
	}
	const ddl = `ALTER TABLE acct ALTER seq ADD GENERATED ALWAYS AS IDENTITY (START 10)`
	dualCommit(t, p, s, gid(), `INSERT INTO tandem.ddl (stmt) VALUES (`+sqlLiteral(ddl)+`)`, ddl)
	for _, k := range []string{"a", "b", "c"} {
		dualCommit(t, p, s, gid(), `UPDATE acct SET v = v || '2' WHERE k = '`+k+`'`)
	}
	dualCommit(t, p, s, gid(), `INSERT INTO acct (k, v) VALUES ('d', 'd')`, `UPDATE acct SET seq = DEFAULT WHERE k = 'a'`)
	requireSame(t, p)
}

// TestApplyCreateTableAs: a table DDL through the shim creates with rows (CREATE TABLE … AS)
// holds on the peer the rows it holds on the local database, which arrive as row changes: not
// also the rows the statement selects on the peer (twice as many, or other values).
func TestApplyCreateTableAs(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE TABLE src (id int PRIMARY KEY, v text)`, `CREATE TABLE kept (id int)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO src VALUES (1, 'a'), (2, 'b')`, `INSERT INTO kept VALUES (1)`)
	ddl := func(stmt string) []string {
		return []string{`INSERT INTO tandem.ddl (stmt) VALUES (` + sqlLiteral(stmt) + `)`, stmt}
	}
	stmts := append(ddl(`CREATE TABLE copied AS SELECT id, v, random() AS r FROM src`),
		`INSERT INTO kept VALUES (2)`)
	stmts = append(stmts, ddl(`CREATE TABLE IF NOT EXISTS empty_too AS SELECT * FROM src WITH NO DATA`)...)
	stmts = append(stmts, `INSERT INTO empty_too VALUES (9, 'z')`)
	dualCommit(t, p, s, gidFor("a", 1, 2), stmts...)
	requireSame(t, p)
	for table, want := range map[string]int{"copied": 2, "empty_too": 1, "kept": 2} {
		if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM `+table); n != want {
			t.Errorf("%s has %d rows on the peer, want %d", table, n, want)
		}
	}

	// A table outside the publication (a schema made after install) ships no rows: the peer
	// keeps those the statement selected there.
	p.both(t, `CREATE SCHEMA later`)
	dualCommit(t, p, s, gidFor("a", 1, 3), ddl(`CREATE TABLE later.summary AS SELECT count(*) AS n FROM src`)...)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM later.summary`); n != 1 {
		t.Errorf("later.summary, which is not published, has %d rows on the peer, want 1", n)
	}
}

// TestApplyXMLContent: xml values that are content rather than documents (text, several
// elements) reach a peer whose database default is xmloption = document, which would refuse to
// read them.
func TestApplyXMLContent(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE frag (id int PRIMARY KEY, x xml)`)
	p.peer.Exec(t, `ALTER DATABASE app SET xmloption = document`)
	installPair(t, p)
	s := startShipper(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO frag VALUES (1, 'just text'), (2, '<a/><b/>')`)
	requireSame(t, p)
}

// TestApplyDDLStringLiterals: DDL through the shim, whose sessions all have
// standard_conforming_strings on, reads its string literals the same on a peer whose database
// default is off: a backslash stays a backslash.
func TestApplyDDLStringLiterals(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE lit (id int PRIMARY KEY)`)
	p.peer.Exec(t, `ALTER DATABASE app SET standard_conforming_strings = off`)
	installPair(t, p)
	s := startShipper(t, p)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO lit VALUES (1)`)
	const ddl = `ALTER TABLE lit ADD COLUMN path text DEFAULT 'C:\new\table'`
	dualCommit(t, p, s, gidFor("a", 1, 2), `INSERT INTO tandem.ddl (stmt) VALUES (`+sqlLiteral(ddl)+`)`, ddl)
	requireSame(t, p)
}

// TestApplyDDLTimeZone: DDL through the shim reads its date and time literals on the peer as its
// session did on the local database — in that session's TimeZone and DateStyle (a JDBC client
// sends its JVM's time zone) — so that the default it gives the existing rows is the same.
func TestApplyDDLTimeZone(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t, `CREATE TABLE since (id int PRIMARY KEY)`)
	dualCommit(t, p, s, gidFor("a", 1, 1), `INSERT INTO since VALUES (1)`)
	const ddl = `ALTER TABLE since ADD COLUMN at timestamptz DEFAULT '2024-03-04 05:06', ADD COLUMN d date DEFAULT '01/02/2024'`
	dualCommit(t, p, s, gidFor("a", 1, 2), `SET LOCAL timezone = 'Asia/Kathmandu'`, `SET LOCAL datestyle = 'SQL, DMY'`,
		`INSERT INTO tandem.ddl (stmt) VALUES (`+sqlLiteral(ddl)+`)`, ddl, `INSERT INTO since (id) VALUES (2)`)
	requireSame(t, p)
	const q = `SELECT string_agg(format('%s %s %s', id, at AT TIME ZONE 'UTC', d), ', ' ORDER BY id) FROM since`
	if got := queryOne[string](t, p.pdb, q); got != "1 2024-03-03 23:21:00 2024-02-01, 2 2024-03-03 23:21:00 2024-02-01" {
		t.Errorf("peer rows: %s", got)
	}
}
