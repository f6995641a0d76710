package txshim

import (
	"database/sql"
	"testing"
	"time"
)

// TestClientTouchesTandemObjects: a client of the shim (served as local_dsn's user, often a
// superuser) could change Tandem's own objects through it, and the shim recorded the DDL for
// the peer like any other: ALTER PUBLICATION tandem SET (publish = 'insert') then made every
// later UPDATE commit "dual" on the local database only (not decoded), and a row written into
// tandem.ddl made the peer run a statement the local database never ran (here DROP TABLE).
// Such statements are now refused (42501) in the client's transaction.
func TestClientTouchesTandemObjects(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t, `CREATE TABLE items (id int PRIMARY KEY, v int)`, `CREATE TABLE tandem_log (id int PRIMARY KEY)`)
	if err := exec(`INSERT INTO items VALUES (1, 1)`); err != nil {
		t.Fatal(err)
	}
	rollback := func() {
		if conn.PgConn().TxStatus() != 'I' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER PUBLICATION tandem SET (publish = 'insert')`,
		`INSERT INTO tandem.ddl (stmt) VALUES ('DROP TABLE items')`,
		`BEGIN; INSERT INTO items VALUES (9, 9); ALTER PUBLICATION "tandem" DROP TABLE tandem.ddl; COMMIT`,
		`ALTER PUBLICATION tandem SET (publish_via_partition_root = true)`,
		`ALTER PUBLICATION TANDEM DROP TABLES IN SCHEMA public`,
		`ALTER PUBLICATION tandem RENAME TO other`,
		`DROP PUBLICATION IF EXISTS x, tandem`,
		`DROP SCHEMA tandem CASCADE`,
		`ALTER SCHEMA tandem RENAME TO t2`,
		`DROP TABLE tandem.decisions`,
		`ALTER TABLE tandem.ddl DISABLE TRIGGER ALL`,
		`CREATE TABLE tandem.mine (id int PRIMARY KEY)`,
		`ALTER EVENT TRIGGER tandem_ddl_guard DISABLE`,
		`ALTER EVENT TRIGGER "tandem_ddl_guard_drop" DISABLE`,
		`DROP EVENT TRIGGER IF EXISTS tandem_publish_schema`,
		`UPDATE tandem.state SET term = term + 5`,
		`DELETE FROM tandem.decisions`,
		`TRUNCATE tandem.ddl`,
		`WITH x AS (SELECT 1) INSERT INTO tandem.ddl (stmt) SELECT 'DROP TABLE items' FROM x`,
	} {
		err := exec(q)
		if c := pgCode(err); c != "42501" {
			t.Errorf("%s: %v (SQLSTATE %q), want it refused with 42501", q, err, c)
		}
		rollback()
	}
	// The extended protocol too.
	if _, err := conn.Exec(capCtx(t, 10*time.Second), `INSERT INTO tandem.ddl (stmt) VALUES ($1)`, "DROP TABLE items"); pgCode(err) != "42501" {
		t.Errorf("INSERT INTO tandem.ddl, extended protocol: %v, want it refused with 42501", err)
	}
	rollback()
	// Still allowed: reading Tandem's objects, and the application's own that merely
	// resemble them.
	for _, q := range []string{
		`SELECT term FROM tandem.state`,
		`INSERT INTO tandem_log VALUES (1)`,
		`BEGIN; INSERT INTO items SELECT 2, term::int FROM tandem.state; COMMIT`,
		`CREATE TABLE tandem_x (id int PRIMARY KEY)`,
		`COMMENT ON TABLE items IS 'tandem.ddl'`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
		rollback()
	}
	if err := exec(`UPDATE items SET v = 2 WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		var pub string
		var enabled int
		if err := db.QueryRow(`SELECT (SELECT pubupdate::text || pubdelete::text || pubviaroot::text FROM pg_publication WHERE pubname = 'tandem'),
  (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'tandem\_%' AND evtenabled = 'A')`).Scan(&pub, &enabled); err != nil {
			t.Fatalf("the publication or event triggers: %v", err)
		}
		// extension_before, extension_rows, ddl_ctas, ddl_guard, ddl_guard_drop,
		// ddl_guard_start, ddl_rewrite, publish_schema.
		if pub != "truetruefalse" || enabled != 8 {
			t.Errorf("publication tandem update/delete/via-root %s, %d event triggers enabled always; want truetruefalse and 8", pub, enabled)
		}
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_class WHERE relname = 'items'`); n != 1 {
		t.Fatal("the peer dropped table items: a row a client wrote into tandem.ddl")
	}
	shipped()
}

// TestOwnObjectRefusal: which statements the lexer takes for changes of Tandem's objects.
func TestOwnObjectRefusal(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sql    string
		refuse bool
	}{
		{`ALTER PUBLICATION tandem ADD TABLE x`, true},
		{`ALTER PUBLICATION "tandem" OWNER TO bob`, true},
		{`ALTER PUBLICATION "Tandem" OWNER TO bob`, false},
		{`ALTER PUBLICATION mine SET TABLE tandem_x`, false},
		{`DROP PUBLICATION IF EXISTS a, b, tandem CASCADE`, true},
		{`DROP PUBLICATION a`, false},
		{`CREATE PUBLICATION all_t FOR ALL TABLES`, false},
		{`DROP SCHEMA app, "tandem"`, true},
		{`DROP SCHEMA tandemx`, false},
		{`ALTER SCHEMA tandem OWNER TO bob`, true},
		{`ALTER EVENT TRIGGER TANDEM_DDL_GUARD ENABLE`, true},
		{`DROP EVENT TRIGGER mine`, false},
		{`CREATE INDEX ON tandem.ddl (at)`, true},
		{`DROP INDEX CONCURRENTLY tandem.decisions_at`, true},
		{`GRANT INSERT ON tandem.ddl TO bob`, true},
		{`SECURITY LABEL ON TABLE tandem.state IS 'x'`, true},
		{`CREATE TABLE tandem (id int)`, false},
		{`CREATE TABLE t (tandem int, x int CHECK (tandem > 0))`, false},
		{`COMMENT ON TABLE items IS 'tandem.ddl'`, false},
		{`INSERT INTO tandem.ddl (stmt) VALUES ('x')`, true},
		{`INSERT INTO "tandem"."ddl" (stmt) VALUES ('x')`, true},
		{`insert into TANDEM . ddl (stmt) values ('x')`, true},
		{`INSERT INTO items SELECT term FROM tandem.state`, false},
		{`INSERT INTO tandem (id) VALUES (1)`, false},
		{`UPDATE tandem.state SET term = 9`, true},
		{`UPDATE ONLY tandem.state SET term = 9`, true},
		{`UPDATE items SET v = (SELECT term FROM tandem.state)`, false},
		{`DELETE FROM tandem.decisions`, true},
		{`DELETE FROM items USING tandem.decisions d WHERE d.gid = items.g`, false},
		{`MERGE INTO tandem.ddl d USING s ON true WHEN MATCHED THEN DELETE`, true},
		{`TRUNCATE items, ONLY tandem.ddl`, true},
		{`TRUNCATE TABLE tandem.decisions CASCADE`, true},
		{`TRUNCATE items`, false},
		{`COPY tandem.ddl FROM STDIN`, true},
		{`COPY tandem.ddl TO STDOUT`, false},
		{`LOCK TABLE tandem.state`, true},
		{`LOCK TABLE tandem.state IN ACCESS EXCLUSIVE MODE`, true},
		{`LOCK tandem.state IN SHARE ROW EXCLUSIVE MODE NOWAIT`, true},
		{`LOCK TABLE tandem.state IN ACCESS SHARE MODE`, false},
		{`LOCK TABLE acct, tandem.state IN EXCLUSIVE MODE`, true},
		{`LOCK acct, ONLY tandem.ddl`, true},
		{`LOCK TABLE acct, tandem.state IN ACCESS SHARE MODE`, false},
		{`lock table only tandem.ddl in row share mode nowait`, false},
		{`SELECT term FROM tandem.state FOR UPDATE`, false},
		{`SELECT * FROM tandem.ddl`, false},
		{`WITH d AS (DELETE FROM tandem.decisions RETURNING 1) SELECT count(*) FROM d`, true},
		{`PREPARE p AS INSERT INTO tandem.ddl (stmt) VALUES ($1)`, true},
		{`EXPLAIN ANALYZE UPDATE tandem.state SET term = 1`, true},
		{`INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 1`, false},
		{`SELECT 'INSERT INTO tandem.ddl'`, false},
		{`-- INSERT INTO tandem.ddl
SELECT 1`, false},
	} {
		sts := splitStatements(c.sql)
		got := ""
		for _, st := range sts {
			if r := ownObjectRefusal(c.sql, st); r != "" {
				got = r
			}
		}
		if (got != "") != c.refuse {
			t.Errorf("%s: refusal %q, want refused %v", c.sql, got, c.refuse)
		}
	}
}
