package txshim

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// lexDiffLong is a function name longer than NAMEDATALEN-1: PostgreSQL truncates it to 63 bytes.
var lexDiffLong = "w_" + strings.Repeat("long", 17)

const lexDiffSchema = `
CREATE TABLE wlog (x int);
INSERT INTO acct VALUES (1, 1) ON CONFLICT DO NOTHING;
CREATE SEQUENCE sq;
CREATE FUNCTION w(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (i) RETURNING x';
CREATE FUNCTION wp(i int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN INSERT INTO wlog VALUES (i); RETURN i; END $$;
CREATE SCHEMA s2;
CREATE FUNCTION s2.w2(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (i) RETURNING x';
CREATE FUNCTION "MixedW"(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (i) RETURNING x';
CREATE FUNCTION sdef(i int) RETURNS int LANGUAGE sql SECURITY DEFINER AS 'INSERT INTO wlog VALUES (i) RETURNING x';
CREATE FUNCTION ro(i int) RETURNS int LANGUAGE sql STABLE AS 'SELECT i + 1';
CREATE FUNCTION ov(i int) RETURNS int LANGUAGE sql STABLE AS 'SELECT i';
CREATE FUNCTION ov(t text) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (1) RETURNING x';
CREATE FUNCTION wop(a int, b int) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (a + b) RETURNING x';
CREATE OPERATOR #=# (LEFTARG = int, RIGHTARG = int, FUNCTION = wop);
CREATE TYPE wt AS (a int);
CREATE FUNCTION wcast(i int) RETURNS wt LANGUAGE sql AS 'INSERT INTO wlog VALUES (i) RETURNING row(x)::wt';
CREATE CAST (int AS wt) WITH FUNCTION wcast(int);
CREATE FUNCTION wchk(i int) RETURNS bool LANGUAGE sql AS 'INSERT INTO wlog VALUES (i) RETURNING true';
CREATE DOMAIN wd AS int CHECK (wchk(VALUE));
CREATE FUNCTION wattr(a acct) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (a.id) RETURNING x';
CREATE FUNCTION wagg_sf(s int, v int) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (v) RETURNING x';
CREATE AGGREGATE wagg(int) (SFUNC = wagg_sf, STYPE = int);
CREATE FUNCTION dflt(i int DEFAULT w(7)) RETURNS int LANGUAGE sql STABLE AS 'SELECT i';
CREATE FUNCTION ` + "LONGNAME" + `(i int) RETURNS int LANGUAGE sql AS 'INSERT INTO wlog VALUES (i) RETURNING x';
CREATE VIEW v_w AS SELECT w(1) AS x;
CREATE VIEW v_op AS SELECT 1 #=# 2 AS x;
CREATE VIEW v_agg AS SELECT wagg(x) FROM (VALUES (1)) t(x);
CREATE VIEW v_cast AS SELECT (1::wt).a AS x;
CREATE VIEW v_dflt AS SELECT dflt() AS x;
CREATE VIEW v_ro AS SELECT ro(1) AS x;
CREATE TABLE kw (share int, update int);
CREATE TABLE jobs (id int);
CREATE FUNCTION jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NOTIFY jobs; RETURN NEW; END $$;
CREATE TRIGGER jobs_t AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_notify();
`

// lexDiffCorpus builds the statements compared.
func lexDiffCorpus() []string {
	exprs := []string{
		"w(1)", "public.w(1)", `"w"(1)`, "W (1)", "s2.w2(1)", `"s2"."w2"(1)`, `"MixedW"(1)`, "wp(1)", "sdef(1)",
		"ov('x')", "ov(1)", `U&"\0077"(1)`, `U&"!0077" UESCAPE '!'(1)`, "w/**/(1)", "w -- c\n(1)",
		"1 #=# 2", "(1::wt).a", "cast(1 AS wt)", "1::wd", "cast(2 AS wd)",
		"(SELECT wagg(x) FROM (VALUES (1)) t(x))", "dflt()", "dflt(3)", lexDiffLong + "(1)",
		"(SELECT a.wattr FROM acct a LIMIT 1)", "(SELECT wattr(a) FROM acct a LIMIT 1)",
		"nextval('sq')", "setval('sq', 5)", "pg_advisory_xact_lock(1)", "lo_create(0)",
		"txid_current()", "pg_current_xact_id()", "ro(1)", "abs(1)", "1",
	}
	wrappers := []string{
		"SELECT %s", "SELECT * FROM (SELECT %s) s", "VALUES (%s)", "WITH a AS (SELECT %s) SELECT * FROM a",
		"SELECT 1 WHERE %s IS NOT NULL", "EXPLAIN ANALYZE SELECT %s", "EXPLAIN (ANALYZE, COSTS OFF) SELECT %s",
		"EXPLAIN SELECT %s", "COPY (SELECT %s) TO STDOUT", "/* c; */ SELECT (SELECT (%s)) -- x",
		"SELECT $$;INSERT$$, %s", "SELECT E'\\';', %s", "select\t%s",
	}
	var out []string
	for _, w := range wrappers {
		for _, e := range exprs {
			out = append(out, fmt.Sprintf(w, e))
		}
	}
	out = append(out,
		"WITH a AS (SELECT 1), b AS (INSERT INTO wlog VALUES (1) RETURNING *) SELECT * FROM a",
		"WITH a AS (WITH b AS (DELETE FROM wlog WHERE x = -1 RETURNING *) SELECT * FROM b) SELECT * FROM a",
		"WITH b AS (UPDATE wlog SET x = x WHERE x = -1 RETURNING *) SELECT * FROM b",
		"SELECT * FROM acct FOR UPDATE", "SELECT * FROM acct FOR NO KEY UPDATE", "SELECT * FROM acct FOR SHARE",
		"SELECT * FROM acct FOR KEY SHARE", "SELECT * FROM acct",
		"TABLE acct", "TABLE v_w", "TABLE v_op", "TABLE v_agg", "TABLE v_cast", "TABLE v_dflt", "TABLE v_ro",
		"SELECT * FROM v_w", "SELECT * FROM public.v_op", `SELECT * FROM "v_agg"`, `SELECT * FROM "v_w"`,
		`TABLE public."v_w"`, `SELECT * FROM U&"v\005fw"`, `SELECT x FROM "v_dflt"`,
		"VALUES (1)", "SHOW work_mem", "SELECT 'INSERT'", `SELECT 1 AS "update"`,
		"EXPLAIN ANALYZE INSERT INTO wlog VALUES (1)", "EXPLAIN (ANALYZE false) INSERT INTO wlog VALUES (1)",
		"EXPLAIN (ANALYZE off, COSTS false) SELECT w(1)", "EXPLAIN (ANALYZE 0) SELECT w(1)",
		"EXPLAIN (ANALYZE) SELECT w(1)", "EXPLAIN (ANALYZE TRUE) SELECT w(1)", "EXPLAIN VERBOSE SELECT w(1)",
		"EXPLAIN ANALYZE VERBOSE SELECT w(1)", "EXPLAIN (\"analyze\") SELECT w(1)",
		"COPY (INSERT INTO wlog VALUES (1) RETURNING *) TO STDOUT", "COPY acct TO STDOUT",
		"COPY (SELECT * FROM acct) TO STDOUT",
		"SELECT pg_advisory_lock(1)", "SELECT pg_advisory_unlock(1)",
		"SELECT pg_current_xact_id_if_assigned()", "SELECT txid_current_if_assigned()",
		"SELECT pg_notify('c', 'x')", "SELECT lo_unlink(0)", `SELECT "pg_notify"('c', 'x')`, `SELECT U&"pg_n\006ftify"('c', 'x')`,
		"PREPARE pw AS SELECT w(1); EXECUTE pw; DEALLOCATE pw", "DECLARE c CURSOR FOR SELECT w(1); FETCH c; CLOSE c",
		"CREATE TABLE ctas1 AS SELECT w(1)", "SELECT w(1) INTO si1", "SELECT share, update FROM kw",
		"INSERT INTO jobs VALUES (1)", `INSERT INTO "jobs" VALUES (1)`, `INSERT INTO public."jobs" VALUES (1)`,
		`INSERT INTO U&"j\006fbs" VALUES (1)`,
	)
	return out
}

// TestLexDiff runs a corpus of statements through a dual shim and straight on PostgreSQL, and
// compares what PostgreSQL did (an xid assigned, a row written) with what the shim did (a dual
// commit).
func TestLexDiff(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, strings.ReplaceAll(lexDiffSchema, "LONGNAME", lexDiffLong))
	peer := &countPeer{}
	s := startShim(t, c, Options{Peer: peer, Logger: quietLogger(), FuncRefresh: time.Hour}, ModeDual, 1)
	ctx := capCtx(t, 5*time.Minute)
	for deadline := time.Now().Add(20 * time.Second); s.Catalog().ReadAt.IsZero(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("catalog never read")
		}
	}
	direct, err := pgx.Connect(ctx, c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	conn := s.connect(t)
	run := func(pc *pgx.Conn, sql string) error {
		if strings.Contains(sql, "TO STDOUT") {
			_, err := pc.PgConn().CopyTo(ctx, io.Discard, sql)
			return err
		}
		_, err := pc.PgConn().Exec(ctx, sql).ReadAll()
		return err
	}
	// Each statement costs four round trips (three on the direct connection, one through the
	// shim), and the peer only counts Prepares: with some 500 statements, the run's time is
	// mostly round trips, each a wake-up of the test, the shim and a backend on a loaded
	// machine.
	var unseen, needless, lockOnly []string
	for _, sql := range lexDiffCorpus() {
		// What PostgreSQL does: in a transaction rolled back.
		res, err := direct.PgConn().Exec(ctx, "BEGIN; SELECT count(*) FROM wlog").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		before := string(res[1].Rows[0][0])
		gerr := run(direct, sql)
		var xid []byte
		var after string
		if gerr == nil {
			res, err := direct.PgConn().Exec(ctx, "SELECT pg_current_xact_id_if_assigned()::text, (SELECT count(*) FROM wlog); ROLLBACK; SELECT pg_advisory_unlock_all()").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			xid, after = res[0].Rows[0][0], string(res[0].Rows[0][1])
		} else if _, err := direct.PgConn().Exec(ctx, "ROLLBACK; SELECT pg_advisory_unlock_all()").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if gerr != nil {
			t.Logf("SKIP (error on PostgreSQL) %q: %v", sql, gerr)
			continue
		}
		wrote := after != before
		// What the shim does.
		serr := run(conn, sql)
		dual := peer.take() > 0
		if strings.Contains(sql, "advisory_lock(") { // a session-level lock outlives it
			if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
				t.Fatal(err)
			}
			if n := peer.take(); n > 0 {
				t.Fatalf("pg_advisory_unlock_all() through the shim: %d peer prepares", n)
			}
		}
		if serr != nil {
			t.Errorf("REFUSED by the shim, not by PostgreSQL: %q: %v", sql, serr)
			continue
		}
		switch {
		case wrote && !dual:
			unseen = append(unseen, sql)
		case xid != nil && !dual:
			lockOnly = append(lockOnly, sql)
		case xid == nil && dual:
			needless = append(needless, sql)
		}
	}
	for _, u := range unseen {
		if knownUnseen(u) {
			t.Logf("unseen write, a known limit (a function called without its name): %q", u)
			continue
		}
		t.Errorf("UNSEEN WRITE (row written, no dual commit): %q", u)
	}
	for _, u := range lockOnly {
		t.Logf("xid without rows, no dual commit: %q", u)
	}
	for _, u := range needless {
		t.Logf("NEEDLESS dual commit of a pure read: %q", u)
	}
}

// countPeer is a Peer that counts the Prepares it is asked for and prepares nothing.
type countPeer struct {
	mu       sync.Mutex
	prepares int
}

func (p *countPeer) Prepare(context.Context, string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prepares++
	return nil
}

func (p *countPeer) Commit(string)   {}
func (p *countPeer) Rollback(string) {}

// take returns the Prepares counted since the last take.
func (p *countPeer) take() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.prepares
	p.prepares = 0
	return n
}

// knownUnseen tells whether sql calls a writing function without naming it, which the shim does
// not see (README): through an operator, a cast, a domain's CHECK constraint, or attribute
// notation.
func knownUnseen(sql string) bool {
	for _, s := range []string{"#=#", "wt", "wd", ".wattr"} {
		if strings.Contains(sql, s) {
			return true
		}
	}
	return false
}

// TestLexDiffFixed: reads that write, which the shim took for reads and committed plainly, the
// client answered before the peer had the write — a function named U&"…" (escapes not
// decoded) or with more than 63 bytes (PostgreSQL truncates the name), a function whose
// argument's default calls a writer, an aggregate whose transition function writes, a view
// named "quoted", a view that uses an operator whose function writes — now commit on both
// databases; and an INSERT into a "quoted" table whose trigger notifies is no longer sent to
// PREPARE, which failed with 0A000.
func TestLexDiffFixed(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, strings.ReplaceAll(lexDiffSchema, "LONGNAME", lexDiffLong))
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer, Logger: quietLogger(), FuncRefresh: time.Hour}, ModeDual, 1)
	ctx := capCtx(t, time.Minute)
	for deadline := time.Now().Add(20 * time.Second); s.Catalog().ReadAt.IsZero(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("catalog never read")
		}
	}
	conn := s.connect(t)
	for _, sql := range []string{
		`SELECT U&"\0077"(1)`, `SELECT U&"!0077" UESCAPE '!'(1)`, `SELECT * FROM U&"v\005fw"`,
		"SELECT " + lexDiffLong + "(1)", "SELECT dflt()", "TABLE v_dflt",
		"SELECT wagg(x) FROM (VALUES (1)) t(x)", "TABLE v_agg", "TABLE v_op",
		`SELECT * FROM "v_w"`, `TABLE public."v_w"`,
	} {
		if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if calls := peer.take(); len(calls) == 0 {
			t.Errorf("%s wrote, and was committed plainly: the client was answered before the peer had it", sql)
		}
	}
	for _, sql := range []string{`INSERT INTO "jobs" VALUES (1)`, `INSERT INTO U&"j\006fbs" VALUES (2)`} {
		if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			t.Errorf("%s (the table's trigger notifies): %v", sql, err)
		}
		peer.take()
	}
	// Reads stay reads.
	for _, sql := range []string{`SELECT U&"\0072o"(1)`, `SELECT * FROM "v_ro"`, "SELECT " + lexDiffLong[:40] + "x()"} {
		_, _ = conn.PgConn().Exec(ctx, sql).ReadAll()
		if calls := peer.take(); len(calls) != 0 {
			t.Errorf("%s: a read reached the peer: %v", sql, calls)
		}
	}
}

func TestFoldNameUnicode(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 40) // 80 bytes: cut to 62, not through a character
	for in, want := range map[string]string{
		`U&"\0077"`:                      "w",
		`u&"d\0061t\+000061"`:            "data",
		`U&"!0077" UESCAPE '!'`:          "w",
		`U&"a\\b"`:                       `a\b`,
		`U&"a""b"`:                       `a"b`,
		`U&"\D83D\DE00"`:                 "😀",
		`"Odd""Name"`:                    `Odd"Name`,
		"Long" + strings.Repeat("x", 70): "long" + strings.Repeat("x", 59),
		`"` + long + `"`:                 strings.Repeat("é", 31),
	} {
		if got := string(foldName(in, nil)); got != want {
			t.Errorf("foldName(%q) = %q, want %q", in, got, want)
		}
	}
	st := splitStatements(`SELECT U&"!0077" UESCAPE '!' (1), U&"\0077"(2) FROM U&"v\005fw"`)[0]
	if got := strings.Join(folded(st.Calls), ","); got != "w,w" {
		t.Errorf("calls %q, want w,w", got)
	}
	if got := strings.Join(folded(st.Names), ","); !strings.HasSuffix(got, ",w,w,v_w") {
		t.Errorf("names %q, want the quoted ones last: w,w,v_w", got)
	}
}
