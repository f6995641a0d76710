package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ddlPair starts a pair holding setup, a Shipper and a shim in dual mode over it, and a client
// of the shim; shipped waits until the peer has everything committed and both databases hold
// the same rows.
func ddlPair(t *testing.T, setup ...string) (p *capPair, conn *pgx.Conn, exec func(sql string) error, shipped func()) {
	t.Helper()
	p, sh, shim := startShipPair(t, nil, Options{}, setup...)
	catchUpToDual(t, sh, shim)
	conn = shim.connect(t)
	// Each statement has its own bound, not the test as a whole: a test of ten DDL statements,
	// each checked with a few catalog reads on both databases, took past a minute on a loaded
	// machine (ci209).
	exec = func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
	shipped = func() {
		t.Helper()
		waitFor(t, "the peer to have every commit", func() bool { return sh.Backlog() == 0 })
		if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
			t.Fatalf("mode %v, peer synced %v: want dual and in step", m, sh.PeerSynced())
		}
		requireSame(t, p)
	}
	return p, conn, exec, shipped
}

// keeperPair is ddlPair over a table vault (id int PRIMARY KEY, v float8) and an UNLOGGED table
// scratch (id int PRIMARY KEY) — with rows, vault's rows 1 to 3 and scratch's row 1 — each
// owned by the role keeper with row-level security forced on it under the policy name USING
// (using), which then applies to the owner's statements too; more ends the set-up. Its client
// has taken the role keeper; shipped sets the role back, then waits as ddlPair's does.
func keeperPair(t *testing.T, policy, using string, rows bool, more ...string) (conn *pgx.Conn, exec func(sql string) error, shipped func()) {
	t.Helper()
	setup := []string{`CREATE ROLE keeper`, `CREATE TABLE vault (id int PRIMARY KEY, v float8)`}
	if rows {
		setup = append(setup, `INSERT INTO vault SELECT g, g FROM generate_series(1, 3) g`)
	}
	setup = append(setup, `CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)`)
	if rows {
		setup = append(setup, `INSERT INTO scratch VALUES (1)`)
	}
	for _, table := range []string{"vault", "scratch"} {
		setup = append(setup, forcedRLS(table, policy, using)...)
	}
	_, conn, exec, pairShipped := ddlPair(t, append(setup, more...)...)
	if err := exec(`SET ROLE keeper`); err != nil {
		t.Fatal(err)
	}
	shipped = func() {
		t.Helper()
		if err := exec(`RESET ROLE`); err != nil {
			t.Fatal(err)
		}
		pairShipped()
	}
	return conn, exec, shipped
}

// forcedRLS is the set-up that gives table to the role keeper and forces row-level security on
// it under the policy name USING (using).
func forcedRLS(table, policy, using string) []string {
	return []string{
		`ALTER TABLE ` + table + ` OWNER TO keeper`,
		`ALTER TABLE ` + table + ` ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE ` + table + ` FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY ` + policy + ` ON ` + table + ` USING (` + using + `)`,
	}
}

// TestNewSchemaPublished: the publication held the schemas there at install; a schema made
// later through the shim reached the peer as DDL, but the rows of its tables were never
// decoded — committed "dual", missing on the peer. Its schema is now published as it is made,
// in the same transaction, on both databases (the peer's run of the statement adds it there).
func TestNewSchemaPublished(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	for _, q := range []string{
		`CREATE SCHEMA s2`,
		`CREATE TABLE s2.t (id int PRIMARY KEY, v text)`,
		`INSERT INTO s2.t VALUES (1, 'x'), (2, 'y')`,
		`BEGIN; CREATE SCHEMA s3 CREATE TABLE t (id int PRIMARY KEY); INSERT INTO s3.t VALUES (7); COMMIT`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	for _, c := range []struct {
		q    string
		want int
	}{{`SELECT count(*) FROM s2.t`, 2}, {`SELECT count(*) FROM s3.t`, 1}} {
		if n := queryOne[int](t, p.pdb, c.q); n != c.want {
			t.Errorf("peer: %s = %d, want %d", c.q, n, c.want)
		}
	}
	q := `SELECT count(*) FROM pg_publication_namespace pn JOIN pg_namespace n ON n.oid = pn.pnnspid WHERE n.nspname IN ('s2', 's3')`
	if l, pr := queryOne[int](t, p.ldb, q), queryOne[int](t, p.pdb, q); l != 2 || pr != 2 {
		t.Errorf("schemas s2, s3 in the publication: %d locally, %d on the peer; want 2 and 2", l, pr)
	}
}

// TestDDLGuardReplicaRole: the DDL guard's event triggers were of the default kind, which
// PostgreSQL does not fire in a session with session_replication_role = replica: DDL inside a
// DO block then ran unrecorded, and the peer refused the next write to what it changed.
func TestDDLGuardReplicaRole(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`)
	if err := exec(`SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	err := exec(`DO $$BEGIN EXECUTE 'ALTER TABLE items ADD COLUMN w int DEFAULT 7'; END$$`)
	if pgCode(err) != "0A000" {
		t.Fatalf("DDL inside a DO block under session_replication_role = replica: %v, want 0A000", err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	if err := exec(`INSERT INTO items VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	shipped()
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'w'`); n != 0 {
		t.Error("the refused DDL left column w")
	}
}

// TestAddedColumnDefaultsChecked: ALTER TABLE … ADD of a column whose default each database
// computes for itself is refused on a table with rows (TestAddedDefaultsRefused has the
// others). Two went through: a column of a domain whose default is not constant (no DEFAULT
// word in the statement, so no check ran, and the default is the domain's, not the column's),
// and a date or time literal that reads the clock ('now'), which PostgreSQL turns into a
// constant as the statement runs — each database's own moment. Constant ones still pass.
func TestAddedColumnDefaultsChecked(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE DOMAIN rnd AS float8 DEFAULT random()`,
		`CREATE DOMAIN rnd2 AS rnd`,
		`CREATE DOMAIN seven AS int DEFAULT 7`,
		`CREATE TABLE items (id int PRIMARY KEY)`,
		`INSERT INTO items SELECT generate_series(1, 5)`,
		`CREATE SEQUENCE k_seq`,
		`CREATE TABLE k (id int DEFAULT nextval('k_seq'), at timestamptz DEFAULT now(), d rnd)`,
		`INSERT INTO k (id, at, d) SELECT g, '2020-01-01', 0.5 FROM generate_series(1, 3) g`)
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN r rnd`,
		`ALTER TABLE items ADD COLUMN r2 rnd2`,
		`ALTER TABLE items ADD COLUMN at timestamptz DEFAULT 'now'`,
		`ALTER TABLE items ADD COLUMN d date NOT NULL DEFAULT ' Today '`,
		`ALTER TABLE items ADD COLUMN ok int, ADD COLUMN at timestamp DEFAULT 'tomorrow 10:00'::timestamp`,
		`ALTER TABLE items ADD COLUMN at timestamptz DEFAULT 'now'::text::timestamptz`,
	} {
		err := exec(q)
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD COLUMN s seven`,
		`ALTER TABLE items ADD COLUMN note text DEFAULT 'see you tomorrow'`,
		`ALTER TABLE items ADD COLUMN born date DEFAULT '2020-01-01'`,
		`ALTER TABLE items ADD CONSTRAINT positive CHECK (id > 0)`,
		// No column added: an ADD or SET NOT NULL that rewrites an existing column's row in
		// the catalog, whose default is not constant, was taken for an added column.
		`ALTER TABLE k ADD PRIMARY KEY (id)`,
		`ALTER TABLE k ADD COLUMN w int, ALTER COLUMN at SET NOT NULL, ALTER COLUMN d SET NOT NULL`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(DISTINCT s || '/' || note || '/' || born, ',') FROM items`); got != "7/see you tomorrow/2020-01-01" {
		t.Errorf("peer's rows: %s", got)
	}
}

// TestRetypeUnderClientSettings: ALTER COLUMN … TYPE text without USING writes each value as
// its type's output does under the session's settings; the peer ran the statement under its
// apply session's own, pinned IntervalStyle, so the rows differed when the client's session
// had another — set by the client, or the database's default.
func TestRetypeUnderClientSettings(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`ALTER DATABASE app SET intervalstyle = 'iso_8601'`,
		`CREATE TABLE spans (id int PRIMARY KEY, d interval, e interval, f float8, b bytea)`,
		`INSERT INTO spans VALUES (1, '1 day 2 hours', '3 mons 4 days', 0.1, '\x00ff')`)
	for _, q := range []string{
		`ALTER TABLE spans ALTER COLUMN d TYPE text`,
		`SET intervalstyle = 'sql_standard'`,
		`SET extra_float_digits = 0`,
		`SET bytea_output = 'escape'`,
		`ALTER TABLE spans ALTER COLUMN e TYPE text, ALTER COLUMN f TYPE text, ALTER COLUMN b TYPE text`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	want := `P1DT2H|+0-3 +4 +0:00:00|0.1|\000\377`
	if got := queryOne[string](t, p.pdb, `SELECT concat_ws('|', d, e, f, b) FROM spans`); got != want {
		t.Errorf("peer's row %s, want %s", got, want)
	}
}

// TestSetLoggedWithRows: ALTER TABLE … SET LOGGED on an UNLOGGED table with rows published its
// changes from then on, but its rows had never reached the peer: the next update of one was
// refused there and the peer fell out of step. Refused now, before it runs; an empty one may.
func TestSetLoggedWithRows(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t, `CREATE UNLOGGED TABLE u (id int PRIMARY KEY, v text)`, `CREATE UNLOGGED TABLE e (id int PRIMARY KEY)`)
	if err := exec(`INSERT INTO u VALUES (1, 'x'), (2, 'y')`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`ALTER TABLE u SET LOGGED`); pgCode(err) != "0A000" {
		t.Fatalf("SET LOGGED on an unlogged table with rows: %v, want 0A000", err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	for _, q := range []string{`ALTER TABLE e SET LOGGED`, `INSERT INTO e VALUES (1)`, `UPDATE e SET id = 2`} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM e WHERE id = 2`); n != 1 {
		t.Errorf("the peer's e has %d rows with id 2, want 1", n)
	}
	if per := queryOne[string](t, p.ldb, `SELECT relpersistence::text FROM pg_class WHERE relname = 'u'`); per != "u" {
		t.Errorf("u's persistence %q after the refused SET LOGGED, want u", per)
	}
}

// TestFullIdentityExactRow: on a table without a key (REPLICA IDENTITY FULL) the peer finds a
// changed row by its old values under each type's equality, which takes 0 for -0, 1.0 for 1.00
// and '24:00:00' for '1 day': it updated the first equal row, rewriting its value, so one
// spelling vanished from the peer. The row spelled as the sent one is taken first now.
func TestFullIdentityExactRow(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE ff (f float8, v int)`, `INSERT INTO ff VALUES ('0', 0), ('-0', 0)`,
		`CREATE TABLE fn (n numeric, v int)`, `INSERT INTO fn VALUES (1.0, 0), (1.00, 0)`,
		`CREATE TABLE fi (i interval, v int)`, `INSERT INTO fi VALUES ('24 hours', 0), ('1 day', 0)`)
	for _, q := range []string{
		`UPDATE ff SET v = 1 WHERE f::text = '-0'`,
		`UPDATE fn SET v = 1 WHERE n::text = '1.00'`,
		`UPDATE fi SET v = 1 WHERE i::text = '1 day'`,
		`DELETE FROM ff WHERE f::text = '-0'`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	for _, q := range []string{
		`SELECT string_agg(f::text || '=' || v, ',' ORDER BY f::text) FROM ff`,
		`SELECT string_agg(n::text || '=' || v, ',' ORDER BY n::text) FROM fn`,
		`SELECT string_agg(i::text || '=' || v, ',' ORDER BY i::text) FROM fi`,
	} {
		if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
			t.Errorf("%s: local %s, peer %s", q, l, pr)
		}
	}
}
