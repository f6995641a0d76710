package txshim

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// capPair is a local and a peer cluster for capture tests.
type capPair struct {
	local, peer *pgtest.Cluster
	ldb, pdb    *sql.DB
}

func startCapPair(t *testing.T, opts ...pgtest.Option) *capPair {
	t.Helper()
	var p capPair
	cs := pgtest.StartN(t, 2, opts...)
	p.local, p.peer = cs[0], cs[1]
	p.ldb = p.local.Open(t, p.local.Database())
	p.pdb = p.peer.Open(t, p.peer.Database())
	return &p
}

func (p *capPair) both(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		for _, db := range []*sql.DB{p.ldb, p.pdb} {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
}

func capCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func queryOne[T any](t *testing.T, db *sql.DB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestInstall(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	ctx := capCtx(t, 60*time.Second)
	p.both(t,
		`CREATE TABLE public.accounts (id serial PRIMARY KEY, owner text NOT NULL, balance bigint NOT NULL)`,
		`CREATE TABLE public.log (at timestamptz, msg text)`,
		`CREATE SCHEMA app`,
		`CREATE TABLE app.items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)`,
		`CREATE UNLOGGED TABLE public.cache (k int PRIMARY KEY, v text)`,
		`CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		`CREATE TRIGGER stamp BEFORE INSERT ON public.log FOR EACH ROW EXECUTE FUNCTION public.stamp()`,
		`ALTER TABLE public.log ENABLE ALWAYS TRIGGER stamp`)
	if _, err := p.pdb.Exec(`ALTER TABLE app.items ALTER COLUMN name TYPE varchar(20)`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ldb.Exec(`CREATE TABLE public.extra (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil)
	if err == nil {
		t.Fatal("Install accepted different schemas")
	}
	for _, want := range []string{`"app"."items"."name" is text`, "character varying(20)", `table "public"."extra" exists only on the local database`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("schema difference error %q does not name %q", err, want)
		}
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_namespace WHERE nspname = 'tandem'`); n != 0 {
		t.Error("a refused Install created the tandem schema")
	}
	installState := func(db *sql.DB) InstallState {
		t.Helper()
		st, err := InstallStateOf(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := installState(p.ldb); st != InstallMissing {
		t.Errorf("install state before Install = %s, want %s", st, InstallMissing)
	}

	if _, err := p.pdb.Exec(`ALTER TABLE app.items ALTER COLUMN name TYPE text; CREATE TABLE public.extra (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	guards := func(db *sql.DB) string {
		return queryOne[string](t, db, `SELECT coalesce(string_agg(evtname || ':' || evtevent || ':' || evtenabled::text, ',' ORDER BY evtname), '')
FROM pg_event_trigger WHERE evtfoid = 'tandem.ddl_guard()'::regprocedure`)
	}
	for i := 0; i < 2; i++ {
		if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
			t.Fatalf("Install #%d: %v", i+1, err)
		}
		for _, db := range []*sql.DB{p.ldb, p.pdb} {
			if got, want := guards(db), "tandem_ddl_guard:ddl_command_end:A,tandem_ddl_guard_drop:sql_drop:A,tandem_ddl_guard_start:ddl_command_start:A"; got != want { // A: ALWAYS, replica role too
				t.Fatalf("Install #%d: event triggers %q, want %q", i+1, got, want)
			}
		}
		if i == 0 {
			// As an install of a version before the triggers left it: the next one adds them.
			p.both(t, `DROP FUNCTION tandem.ddl_guard() CASCADE`)
		}
	}
	// Install leaves its mark; a database set up by another version (another mark, or none: a
	// version before the mark) is told apart, and the next Install makes it current.
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if st := installState(db); st != InstallCurrent {
			t.Errorf("install state after Install = %s, want %s", st, InstallCurrent)
		}
	}
	p.local.Exec(t, `UPDATE tandem.installed SET mark = 'an older version'`)
	p.peer.Exec(t, `DROP TABLE tandem.installed`)
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if st := installState(db); st != InstallOutdated {
			t.Errorf("install state of another version's install = %s, want %s", st, InstallOutdated)
		}
	}
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("Install over another version's: %v", err)
	}
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if st := installState(db); st != InstallCurrent {
			t.Errorf("install state after installing again = %s, want %s", st, InstallCurrent)
		}
	}
	if out := logged.String(); !strings.Contains(out, "UNLOGGED tables") || !strings.Contains(out, "public.cache") {
		t.Errorf("Install did not name the unlogged table:\n%s", out)
	}
	// A trigger that fires in replica sessions fires again in the peer's apply.
	if out := logged.String(); !strings.Contains(out, "ENABLE ALWAYS or ENABLE REPLICA") || !strings.Contains(out, "public.log: stamp") {
		t.Errorf("Install did not warn about the ENABLE ALWAYS trigger:\n%s", out)
	}
	// pgtest's clusters allow 64 prepared transactions and 100 connections.
	if out := logged.String(); !strings.Contains(out, "max_prepared_transactions is below max_connections") || !strings.Contains(out, "max_prepared_transactions=64 max_connections=100") {
		t.Errorf("Install did not warn about max_prepared_transactions below max_connections:\n%s", out)
	}
	if strings.Contains(logged.String(), "slot was missing") {
		t.Errorf("a first Install warned about a dropped slot:\n%s", logged.String())
	}
	if err := Install(ctx, "site2", p.peer.DSN("app"), p.local.DSN("app"), nil); err != nil {
		t.Fatalf("Install from the other site: %v", err)
	}
	if !queryOne[bool](t, p.ldb, `SELECT two_phase FROM pg_replication_slots WHERE slot_name = 'tandem_site1'`) {
		t.Error("slot tandem_site1 is not two-phase")
	}
	if !queryOne[bool](t, p.pdb, `SELECT two_phase FROM pg_replication_slots WHERE slot_name = 'tandem_site2'`) {
		t.Error("slot tandem_site2 is not two-phase")
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'tandem_site1'`); n != 0 {
		t.Error("Install of site1 made a slot on the peer")
	}
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		got := queryOne[string](t, db, `SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname || '.' || tablename) FROM pg_publication_tables WHERE pubname = 'tandem'`)
		if got != "app.items,public.accounts,public.extra,public.log,tandem.ddl" {
			t.Errorf("published tables = %s", got)
		}
		if r := queryOne[string](t, db, `SELECT relreplident::text FROM pg_class WHERE oid = 'public.log'::regclass`); r != "f" {
			t.Errorf("public.log (no primary key) has replica identity %q, want f", r)
		}
	}
	// A table created later in a published schema is published without another Install.
	p.both(t, `CREATE TABLE app.later (id int PRIMARY KEY)`)
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_publication_tables WHERE pubname = 'tandem' AND tablename = 'later'`); n != 1 {
		t.Error("table created after Install is not published")
	}

	// Term records only grow.
	term, master, synced, err := ReadTermRecord(ctx, p.ldb)
	if err != nil || term != 0 || master != "" || synced {
		t.Fatalf("fresh term record = %d %q %v %v", term, master, synced, err)
	}
	if err := WriteTermRecord(ctx, p.ldb, 3, "site1", true); err != nil {
		t.Fatal(err)
	}
	if err := WriteTermRecord(ctx, p.ldb, 2, "site2", false); !errors.Is(err, ErrStaleTerm) {
		t.Fatalf("writing an older term: err = %v, want ErrStaleTerm", err)
	}
	if err := WriteTermRecord(ctx, p.ldb, 3, "site1", false); err != nil {
		t.Fatal(err)
	}
	term, master, synced, err = ReadTermRecord(ctx, p.ldb)
	if err != nil || term != 3 || master != "site1" || synced {
		t.Fatalf("term record = %d %q %v %v, want 3 site1 false", term, master, synced, err)
	}

	// The site ran (it has a term record), then its slot was dropped: Install makes it anew and
	// says what that means.
	// The position of a copy site1 once made onto the peer stays while the slot does (a re-run
	// of Install), and goes with a slot made anew: it belongs to the old slot's stream.
	p.peer.Exec(t, `INSERT INTO tandem.decisions (gid, lsn) VALUES ('tandem_site1_resync', 'FF/0')`)
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), nil); err != nil {
		t.Fatalf("Install again: %v", err)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = 'tandem_site1_resync'`); n != 1 {
		t.Error("Install with the slot in place deleted the position of the peer's copy")
	}
	p.local.Exec(t, `SELECT pg_drop_replication_slot('tandem_site1')`)
	logged.Reset()
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatalf("Install after the slot was dropped: %v", err)
	}
	if out := logged.String(); !strings.Contains(out, "slot was missing although this site has run before") {
		t.Errorf("Install after the slot was dropped did not warn:\n%s", out)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM tandem.decisions WHERE gid = 'tandem_site1_resync'`); n != 0 {
		t.Error("Install that made the slot anew kept the position of a copy made for the old one: a re-initialised database's transactions would be skipped as copied")
	}

	// A publication set to publish through partition roots loses TRUNCATEs of single
	// partitions (PostgreSQL does not decode them): Install says so.
	p.local.Exec(t, `ALTER PUBLICATION tandem SET (publish_via_partition_root = true)`)
	logged.Reset()
	if err := Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatalf("Install with publish_via_partition_root: %v", err)
	}
	if out := logged.String(); !strings.Contains(out, "publish_via_partition_root") {
		t.Errorf("Install did not warn about publish_via_partition_root:\n%s", out)
	}
}

func TestInstallRefusesMissingSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts []pgtest.Option
		want []string
	}{
		{"wal_level", []pgtest.Option{pgtest.WithSetting("wal_level", "replica")}, []string{"wal_level", `"replica"`, "ALTER SYSTEM SET wal_level = logical", "restart"}},
		{"max_prepared_transactions", []pgtest.Option{pgtest.WithMaxPreparedTransactions(0)}, []string{"max_prepared_transactions is 0", "ALTER SYSTEM SET max_prepared_transactions", "restart"}},
		// The decoder streams the slot over a replication connection (a WAL sender), and the
		// slot needs a slot of max_replication_slots: without them install said the databases
		// were ready, and the running site could not ship a transaction.
		{"max_wal_senders", []pgtest.Option{pgtest.WithSetting("max_wal_senders", "0")}, []string{"max_wal_senders is 0", "ALTER SYSTEM SET max_wal_senders", "restart"}},
		{"max_replication_slots", []pgtest.Option{pgtest.WithSetting("max_replication_slots", "0")}, []string{"max_replication_slots is 0", "ALTER SYSTEM SET max_replication_slots", "restart"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := pgtest.Start(t, tc.opts...)
			ctx := capCtx(t, 30*time.Second)
			err := Install(ctx, "s1", c.DSN("app"), c.DSN("app"), nil)
			if err == nil {
				t.Fatal("Install accepted the database")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("replication", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.WithPasswordUser("plain", "pw", "scram-sha-256"))
		c.Exec(t, `ALTER ROLE plain NOREPLICATION`)
		ctx := capCtx(t, 30*time.Second)
		dsn := c.UserDSN("plain", "pw", "app")
		err := Install(ctx, "s1", dsn, dsn, nil)
		if err == nil || !strings.Contains(err.Error(), `ALTER ROLE "plain" REPLICATION`) {
			t.Fatalf("err = %v, want advice ALTER ROLE plain REPLICATION", err)
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("error leaks the password: %v", err)
		}
	})
	// The event trigger that refuses DDL the shim cannot ship (ddlGuardSQL) takes a superuser
	// to create: install says so before it changes anything.
	t.Run("superuser", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.WithPasswordUser("plain", "pw", "scram-sha-256"))
		ctx := capCtx(t, 30*time.Second)
		dsn := c.UserDSN("plain", "pw", "app")
		err := Install(ctx, "s1", dsn, dsn, nil)
		if err == nil || !strings.Contains(err.Error(), `user plain is not a superuser`) || !strings.Contains(err.Error(), "event trigger") {
			t.Fatalf("err = %v, want: user plain is not a superuser … event trigger", err)
		}
		if n := queryOne[int](t, c.Open(t, "app"), `SELECT count(*) FROM pg_namespace WHERE nspname = 'tandem'`); n != 0 {
			t.Errorf("install made the tandem schema before refusing")
		}
	})
	// A user lacking both: install named REPLICATION only, and, once that was granted, the
	// superuser on the next run. It names both at once.
	t.Run("replication and superuser", func(t *testing.T) {
		t.Parallel()
		c := pgtest.Start(t, pgtest.WithPasswordUser("plain", "pw", "scram-sha-256"))
		c.Exec(t, `ALTER ROLE plain NOREPLICATION`)
		ctx := capCtx(t, 30*time.Second)
		dsn := c.UserDSN("plain", "pw", "app")
		err := Install(ctx, "s1", dsn, dsn, nil)
		if err == nil {
			t.Fatal("Install accepted the user")
		}
		for _, w := range []string{`ALTER ROLE "plain" REPLICATION`, `is not a superuser`, "event trigger"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
	})
}

// TestInstallSearchPathIndependent: install compared the two application schemas by each
// column's type as format_type spells it under the database's own search_path: a peer whose
// search_path leaves out the type's schema spelled it qualified (public.mood against mood),
// and identical schemas were refused.
func TestInstallSearchPathIndependent(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TYPE mood AS ENUM ('calm', 'glad')`, `CREATE TABLE vals (id int PRIMARY KEY, en mood)`)
	if _, err := p.pdb.Exec(`ALTER DATABASE app SET search_path = pg_catalog`); err != nil {
		t.Fatal(err)
	}
	if err := Install(capCtx(t, 30*time.Second), "site1", p.local.DSN("app"), p.peer.DSN("app"), quietLogger()); err != nil {
		t.Fatalf("Install with the peer's search_path at pg_catalog: %v", err)
	}
}

// TestInstallPartitionIdentityViaRoot: with the publication set to publish through partition
// roots, a partition's old row is logged by its own replica identity but sent under its root's
// relation, whose key columns it may lack (they arrive as NULL): the peer found no row for the
// update or delete, and refused even the first one as a divergence. Install refuses such a
// layout, naming each partition and the fixes; layouts whose partitions' identities cover
// their roots' are accepted, and their updates and deletes ship.
func TestInstallPartitionIdentityViaRoot(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t,
		// The root has no key (install makes it FULL); its partitions are keyed by k alone.
		`CREATE TABLE pr (k int NOT NULL, p int, v text) PARTITION BY LIST (p)`,
		`CREATE TABLE pr1 PARTITION OF pr FOR VALUES IN (1)`, `CREATE TABLE pr2 PARTITION OF pr FOR VALUES IN (2)`,
		`CREATE UNIQUE INDEX pr1_k ON pr1 (k)`, `CREATE UNIQUE INDEX pr2_k ON pr2 (k)`,
		`ALTER TABLE pr1 REPLICA IDENTITY USING INDEX pr1_k`, `ALTER TABLE pr2 REPLICA IDENTITY USING INDEX pr2_k`,
		// The root's key is (k, p); one partition's identity is (k) alone.
		`CREATE TABLE pb (k int NOT NULL, p int, v text, PRIMARY KEY (k, p)) PARTITION BY LIST (p)`,
		`CREATE TABLE pb1 PARTITION OF pb FOR VALUES IN (1)`, `CREATE TABLE pb2 PARTITION OF pb FOR VALUES IN (2)`,
		`CREATE UNIQUE INDEX pb1_k ON pb1 (k)`, `ALTER TABLE pb1 REPLICA IDENTITY USING INDEX pb1_k`,
		// A keyless root (FULL) with a partition attached that brought a key of its own.
		`CREATE TABLE pc (k int NOT NULL, p int, v text) PARTITION BY LIST (p)`,
		`CREATE TABLE pc1 PARTITION OF pc FOR VALUES IN (1)`, `CREATE TABLE pc2 (k int PRIMARY KEY, p int, v text)`,
		`ALTER TABLE pc ATTACH PARTITION pc2 FOR VALUES IN (2)`,
		// Covered: partitions keep the root's key; a keyless root with keyless partitions (all FULL).
		`CREATE TABLE pd (k int NOT NULL, p int, v text, PRIMARY KEY (k, p)) PARTITION BY LIST (p)`,
		`CREATE TABLE pd1 PARTITION OF pd FOR VALUES IN (1)`, `CREATE TABLE pd2 PARTITION OF pd FOR VALUES IN (2)`,
		`CREATE TABLE pf (k int NOT NULL, p int, v text) PARTITION BY LIST (p)`,
		`CREATE TABLE pf1 PARTITION OF pf FOR VALUES IN (1)`, `CREATE TABLE pf2 PARTITION OF pf FOR VALUES IN (2)`)
	installPair(t, p)
	for _, c := range []*pgtest.Cluster{p.local, p.peer} {
		c.Exec(t, `ALTER PUBLICATION tandem SET (publish_via_partition_root = true)`)
	}
	err := Install(capCtx(t, 30*time.Second), "a", p.local.DSN("app"), p.peer.DSN("app"), quietLogger())
	if err == nil {
		t.Fatal("Install accepted publish_via_partition_root with partitions whose replica identity does not cover their root's")
	}
	for _, want := range []string{"public.pr1 (of pr: replica identity (k) against FULL)", "public.pr2 (of pr", "public.pb1 (of pb: replica identity (k) against (k, p))",
		"public.pc2 (of pc: replica identity (k) against FULL)", "publish_via_partition_root = false", "REPLICA IDENTITY FULL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Install's error lacks %q:\n%v", want, err)
		}
	}
	for _, covered := range []string{"pb2", "pc1", "pd1", "pf1"} {
		if strings.Contains(err.Error(), "public."+covered+" ") {
			t.Errorf("Install's error names %s, whose identity covers its root's:\n%v", covered, err)
		}
	}

	// Given REPLICA IDENTITY FULL, the partitions' rows ship through their roots.
	p.both(t, `ALTER TABLE pr1 REPLICA IDENTITY FULL`, `ALTER TABLE pr2 REPLICA IDENTITY FULL`,
		`ALTER TABLE pb1 REPLICA IDENTITY DEFAULT`, `ALTER TABLE pc2 REPLICA IDENTITY FULL`)
	installPair(t, p)
	s := startShipper(t, p)
	n := uint64(0)
	for _, tb := range []string{"pr", "pb", "pc", "pd", "pf"} {
		for _, stmt := range []string{
			`INSERT INTO ` + tb + ` VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 1, 'c')`,
			`UPDATE ` + tb + ` SET p = 2 WHERE k = 1`,
			`UPDATE ` + tb + ` SET v = 'x' WHERE k = 2`,
			`UPDATE ` + tb + ` SET k = 30 WHERE k = 3`,
			`DELETE FROM ` + tb + ` WHERE k = 1`,
		} {
			n++
			dualCommit(t, p, s, gidFor("a", 1, n), stmt)
		}
	}
	requireSame(t, p)
}
