package txshim

import (
	"strings"
	"testing"
)

func kinds(sts []statement) []string {
	var out []string
	for _, st := range sts {
		out = append(out, st.Kind.String())
	}
	return out
}

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql   string
		parts []string
		kinds string // joined by ","
	}{
		{"SELECT 1", []string{"SELECT 1"}, "read"},
		{"SELECT 1; SELECT 2;", []string{"SELECT 1;", " SELECT 2;"}, "read,read"},
		{"SELECT ';'; SELECT 2", []string{"SELECT ';';", " SELECT 2"}, "read,read"},
		{"SELECT 'it''s; x'; SELECT 2", []string{"SELECT 'it''s; x';", " SELECT 2"}, "read,read"},
		{`SELECT E'a\';b'; SELECT 2`, []string{`SELECT E'a\';b';`, " SELECT 2"}, "read,read"},
		{`SELECT e'\\'; SELECT 2`, []string{`SELECT e'\\';`, " SELECT 2"}, "read,read"},
		{`SELECT "a;""b"; SELECT 2`, []string{`SELECT "a;""b";`, " SELECT 2"}, "read,read"},
		{"SELECT $$a;b$$; SELECT 2", []string{"SELECT $$a;b$$;", " SELECT 2"}, "read,read"},
		{"SELECT $x$a;$$;b$x$; SELECT 2", []string{"SELECT $x$a;$$;b$x$;", " SELECT 2"}, "read,read"},
		{"SELECT $1; SELECT 2", []string{"SELECT $1;", " SELECT 2"}, "read,read"},
		{"SELECT a$b; SELECT 2", []string{"SELECT a$b;", " SELECT 2"}, "read,read"},
		{"SELECT 1 -- x;y\n; SELECT 2", []string{"SELECT 1 -- x;y\n;", " SELECT 2"}, "read,read"},
		// A -- comment ends at \r too, as in PostgreSQL: the COMMIT after it is a statement.
		{"SELECT 1 --x\r; COMMIT", []string{"SELECT 1 --x\r;", " COMMIT"}, "read,commit"},
		{"--x\rCOMMIT", []string{"--x\rCOMMIT"}, "commit"},
		// An E'…' string continued across a newline takes backslash escapes in every part.
		{"SELECT E'x'\n'\\' ' ; COMMIT ; SELECT ' '", []string{"SELECT E'x'\n'\\' ' ;", " COMMIT ;", " SELECT ' '"}, "read,commit,read"},
		{"SELECT E'a'\n'\\'; COMMIT; SELECT '", []string{"SELECT E'a'\n'\\'; COMMIT; SELECT '"}, "read"},
		{"SELECT E'a' -- c\n  -- d\n'\\'; COMMIT; SELECT '", []string{"SELECT E'a' -- c\n  -- d\n'\\'; COMMIT; SELECT '"}, "read"},
		// A standard string continued across a newline takes no escapes in any part.
		{"SELECT 'a'\n'\\'; COMMIT", []string{"SELECT 'a'\n'\\';", " COMMIT"}, "read,commit"},
		{"SELECT /* a /* b; */ c; */ 1; SELECT 2", []string{"SELECT /* a /* b; */ c; */ 1;", " SELECT 2"}, "read,read"},
		{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1",
			[]string{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));", " SELECT 1"}, "ddl,read"},
		{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
			[]string{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;", " SELECT 3"}, "ddl,read"},
		// BEGIN opens a body only as BEGIN ATOMIC: "begin" may name a parameter, a column or a
		// function.
		{"CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql AS 'SELECT 1'; INSERT INTO t VALUES (1); COMMIT",
			[]string{"CREATE FUNCTION f(begin int) RETURNS int LANGUAGE sql AS 'SELECT 1';", " INSERT INTO t VALUES (1);", " COMMIT"}, "ddl,write,commit"},
		{"CREATE FUNCTION f() RETURNS TABLE (begin int) LANGUAGE sql AS $$SELECT 1$$; UPDATE t SET a = 1",
			[]string{"CREATE FUNCTION f() RETURNS TABLE (begin int) LANGUAGE sql AS $$SELECT 1$$;", " UPDATE t SET a = 1"}, "ddl,write"},
		{"CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; DELETE FROM t",
			[]string{"CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;", " DELETE FROM t"}, "ddl,write"},
		{"CREATE PROCEDURE p(begin int) LANGUAGE sql BEGIN -- body\n ATOMIC INSERT INTO t SELECT CASE WHEN begin > 0 THEN begin END; END; COMMIT",
			[]string{"CREATE PROCEDURE p(begin int) LANGUAGE sql BEGIN -- body\n ATOMIC INSERT INTO t SELECT CASE WHEN begin > 0 THEN begin END; END;", " COMMIT"}, "ddl,commit"},
		{"CREATE FUNCTION f() RETURNS SETOF t LANGUAGE sql BEGIN ATOMIC SELECT begin FROM t; END; SELECT 3",
			[]string{"CREATE FUNCTION f() RETURNS SETOF t LANGUAGE sql BEGIN ATOMIC SELECT begin FROM t; END;", " SELECT 3"}, "ddl,read"},
		// A CREATE FUNCTION in a body: PostgreSQL parses it, nested, before refusing it (0A000).
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC CREATE FUNCTION g(begin int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; END; SELECT 3",
			[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC CREATE FUNCTION g(begin int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; END;", " SELECT 3"}, "ddl,read"},
		{"BEGIN; INSERT INTO t VALUES (1); COMMIT", []string{"BEGIN;", " INSERT INTO t VALUES (1);", " COMMIT"}, "begin,write,commit"},
		{"SELECT 'unterminated; x", []string{"SELECT 'unterminated; x"}, "read"},
		{"", []string{""}, "empty"},
		{"SELECT 1;  ", []string{"SELECT 1;", "  "}, "read,empty"},
		// EXPLAIN ANALYZE runs what it explains; EXPLAIN alone does not.
		{"EXPLAIN ANALYZE EXECUTE q; EXPLAIN EXECUTE q", []string{"EXPLAIN ANALYZE EXECUTE q;", " EXPLAIN EXECUTE q"}, "write,read"},
		{"WITH x AS (SELECT 1) SELECT * INTO n FROM x; SELECT 1", []string{"WITH x AS (SELECT 1) SELECT * INTO n FROM x;", " SELECT 1"}, "ddl,read"},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			sts := splitStatements(tt.sql)
			var got []string
			for _, st := range sts {
				got = append(got, tt.sql[st.Start:st.End])
			}
			if strings.Join(got, "|") != strings.Join(tt.parts, "|") {
				t.Fatalf("split %q:\n got  %q\n want %q", tt.sql, got, tt.parts)
			}
			if k := strings.Join(kinds(sts), ","); k != tt.kinds {
				t.Fatalf("split %q: kinds %s, want %s", tt.sql, k, tt.kinds)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("c, ", maxWords) + "c" // more words than a statement keeps
	tests := []struct {
		sql   string
		kind  stmtKind
		flags string // c: chain, t: temp, u: unpreparable, i: COPY FROM
	}{
		{"select 1", kindRead, ""},
		{"  (SELECT 1)", kindRead, ""},
		{"SELECT * FROM t FOR UPDATE", kindWrite, ""},
		{"SELECT * FROM t FOR KEY SHARE", kindWrite, ""},
		{"SELECT 1 INTO newt", kindDDL, ""},
		{"SELECT 1 INTO TEMP newt", kindWrite, "t"},
		{"SELECT 1 INTO GLOBAL TEMP newt", kindWrite, "t"},
		{"SELECT insert INTO newt FROM t", kindDDL, ""}, // a column named insert
		{"SELECT t.into FROM t", kindRead, ""},
		{"SELECT 1 AS into", kindRead, ""},
		{"WITH x AS (SELECT 1) SELECT * INTO newt FROM x", kindDDL, ""},
		{"with x as (select 1) select * into temporary newt from x", kindWrite, "t"},
		{"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * INTO newt FROM x", kindDDL, ""},
		{"WITH d AS (DELETE FROM t RETURNING *) SELECT x.into INTO newt FROM d AS x", kindDDL, ""},
		{"WITH a AS (SELECT " + many + " FROM t) SELECT * INTO newt FROM a", kindDDL, ""},
		{"WITH x AS (SELECT 1 AS a) SELECT a AS insert INTO newt FROM x", kindDDL, ""},
		{"SELECT " + many + " INTO newt FROM t", kindDDL, ""},
		{"SELECT " + many + " INTO TEMP newt FROM t", kindWrite, "t"},
		{"SELECT " + many + " FROM t FOR UPDATE", kindWrite, ""},
		{"SELECT " + many + ", pg_notify('c', 'x')", kindRead, "u"},
		{"WITH x AS (SELECT 1) SELECT * FROM x", kindRead, ""},
		{"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", kindWrite, ""},
		{"WITH a AS (SELECT " + many + " FROM t), d AS (DELETE FROM t RETURNING *) SELECT 1", kindWrite, ""},
		{"VALUES (1)", kindRead, ""},
		{"TABLE t", kindRead, ""},
		{"SHOW work_mem", kindRead, ""},
		{"SET search_path = a", kindRead, ""},
		{"RESET ALL", kindRead, ""},
		{"EXPLAIN SELECT 1", kindRead, ""},
		{"EXPLAIN ANALYZE DELETE FROM t", kindWrite, ""},
		{"EXPLAIN ANALYZE SELECT 1", kindRead, ""},
		{"EXPLAIN ANALYZE EXECUTE q", kindWrite, ""},
		{"EXPLAIN (ANALYZE) EXECUTE q (1)", kindWrite, ""},
		{"EXPLAIN (ANALYZE true, BUFFERS) EXECUTE q", kindWrite, ""},
		{"EXPLAIN (BUFFERS, /* x */ analyze on) EXECUTE q", kindWrite, ""},
		{"EXPLAIN ANALYZE VERBOSE EXECUTE q", kindWrite, ""},
		{"EXPLAIN ANALYZE CREATE TABLE n AS SELECT * FROM t", kindDDL, ""},
		{"EXPLAIN (ANALYZE) CREATE TABLE n AS SELECT * FROM t", kindDDL, ""},
		{"explain analyse verbose create table n as select * from t", kindDDL, ""},
		{"EXPLAIN ANALYZE CREATE MATERIALIZED VIEW m AS SELECT * FROM t", kindDDL, ""},
		{"EXPLAIN (ANALYZE true, BUFFERS) CREATE MATERIALIZED VIEW m AS SELECT * FROM t", kindDDL, ""},
		{"EXPLAIN ANALYZE VERBOSE CREATE MATERIALIZED VIEW m AS SELECT * FROM t", kindDDL, ""},
		{"EXPLAIN ANALYZE CREATE TEMP TABLE n AS SELECT 1", kindWrite, "t"},
		{"EXPLAIN ANALYZE SELECT 1 INTO n", kindDDL, ""},
		{"EXPLAIN ANALYZE WITH x AS (SELECT 1) SELECT * INTO n FROM x", kindDDL, ""},
		{"EXPLAIN (ANALYZE false) INSERT INTO t VALUES (1)", kindRead, ""},
		{"EXPLAIN (ANALYZE OFF, BUFFERS) DELETE FROM t", kindRead, ""},
		{"EXPLAIN (ANALYZE 0) UPDATE t SET a = 1", kindRead, ""},
		{"EXPLAIN (ANALYZE 'off') SELECT * FROM t FOR UPDATE", kindRead, ""},
		{"SELECT pg_notify('c', 'x')", kindRead, "u"},
		{`SELECT "pg_notify"('c', 'x')`, kindRead, "u"},
		{`SELECT pg_catalog."pg_notify"('c', 'x')`, kindRead, "u"},
		{`SELECT "pg_catalog"."pg_notify"('c', 'x')`, kindRead, "u"},
		{`SELECT "pg_export_snapshot"()`, kindRead, "u"},
		{"INSERT INTO t VALUES ('SELECT')", kindWrite, ""},
		{"update t set a = 1", kindWrite, ""},
		{"DELETE FROM t", kindWrite, ""},
		{"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", kindWrite, ""},
		{"TRUNCATE t", kindWrite, ""},
		{"COPY t FROM STDIN", kindWrite, "i"},
		{"COPY t TO STDOUT", kindRead, ""},
		{"COPY (SELECT a FROM t) TO STDOUT", kindRead, ""},
		{"COPY (INSERT INTO t VALUES (1) RETURNING a) TO STDOUT", kindWrite, ""},
		{"COPY (UPDATE t SET a = 1 RETURNING a) TO STDOUT", kindWrite, ""},
		{"COPY (DELETE FROM t RETURNING *) TO STDOUT (FORMAT csv)", kindWrite, ""},
		{"copy /* q */ (merge into t using s on true when matched then delete returning *) to stdout", kindWrite, ""},
		{"COPY (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) TO STDOUT", kindWrite, ""},
		{"COPY (SELECT a FROM t FOR UPDATE) TO STDOUT", kindWrite, ""},
		{"COPY share FROM STDIN", kindWrite, "i"}, // a table named share
		{"COPY t (" + many + ") FROM STDIN", kindWrite, "i"},
		{"DO $$BEGIN END$$", kindWrite, ""},
		{"DO $$BEGIN PERFORM committed(); END$$", kindWrite, ""},
		{"DO $$BEGIN INSERT INTO t VALUES (1); COMMIT; END$$", kindNoTxBlock, ""},
		{"DO LANGUAGE plpgsql 'BEGIN ROLLBACK; END'", kindNoTxBlock, ""},
		{"DO $x$BEGIN CALL p(); END$x$ LANGUAGE plpgsql", kindNoTxBlock, ""},
		{"DO $$BEGIN PERFORM recall(); END$$", kindWrite, ""},
		{"DO $$BEGIN PERFORM 1; -- call it done\nEND$$", kindWrite, ""},
		{"DO $$BEGIN /* no COMMIT /* nor CALL */ */ PERFORM 1; END$$", kindWrite, ""},
		{"DO $$BEGIN EXECUTE 'CALL p()'; END$$", kindNoTxBlock, ""},
		{"DO $$BEGIN EXECUTE $q$ROLLBACK$q$; END$$", kindNoTxBlock, ""},
		{"DO $b$BEGIN PERFORM '--'; CALL p(); END$b$", kindNoTxBlock, ""},
		{"BEGIN", kindBegin, ""},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", kindBegin, ""},
		{"start transaction read only", kindBegin, ""},
		{"COMMIT", kindCommit, ""},
		{"END", kindCommit, ""},
		{"COMMIT AND CHAIN", kindCommit, "c"},
		{"COMMIT AND NO CHAIN", kindCommit, ""},
		{"ROLLBACK AND CHAIN", kindRollback, "c"},
		{"ROLLBACK WORK AND CHAIN", kindRollback, "c"},
		{"rollback transaction and chain", kindRollback, "c"},
		{"ABORT AND CHAIN", kindRollback, "c"},
		{"ROLLBACK AND NO CHAIN", kindRollback, ""},
		{"ROLLBACK", kindRollback, ""},
		{"ABORT", kindRollback, ""},
		{"ROLLBACK TO SAVEPOINT a", kindSavepoint, ""},
		{"ROLLBACK WORK TO a", kindSavepoint, ""},
		{"SAVEPOINT a", kindSavepoint, ""},
		{"RELEASE SAVEPOINT a", kindSavepoint, ""},
		{"PREPARE TRANSACTION 'x'", kindClient2PC, ""},
		{"COMMIT PREPARED 'x'", kindClient2PC, ""},
		{"ROLLBACK PREPARED 'x'", kindClient2PC, ""},
		{"PREPARE q AS SELECT 1", kindRead, ""},
		{"EXECUTE q", kindWrite, ""},
		{"CREATE TABLE t (a int)", kindDDL, ""},
		{"CREATE TEMP TABLE t (a int)", kindWrite, "t"},
		{"CREATE LOCAL TEMPORARY TABLE t (a int)", kindWrite, "t"},
		{"ALTER TABLE t ADD b int", kindDDL, ""},
		{"ALTER TABLE p DETACH PARTITION c CONCURRENTLY", kindNoTxBlock, ""},
		{"ALTER TABLE IF EXISTS s.p DETACH PARTITION s.c CONCURRENTLY", kindNoTxBlock, ""},
		{"DROP TABLE t", kindDDL, ""},
		{"GRANT SELECT ON t TO r", kindDDL, ""},
		{"COMMENT ON TABLE t IS 'x'", kindDDL, ""},
		{"CREATE INDEX CONCURRENTLY i ON t (a)", kindNoTxBlock, ""},
		{"CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)", kindNoTxBlock, ""},
		{"DROP INDEX CONCURRENTLY i", kindNoTxBlock, ""},
		{"CREATE INDEX i ON t (a)", kindDDL, ""},
		{"CREATE DATABASE d", kindNoTxBlock, ""},
		{"ALTER SYSTEM SET work_mem = '1MB'", kindNoTxBlock, ""},
		{"VACUUM t", kindNoTxBlock, ""},
		{"CALL p()", kindNoTxBlock, ""},
		{"REINDEX TABLE CONCURRENTLY t", kindNoTxBlock, ""},
		{"REINDEX SCHEMA s", kindNoTxBlock, ""},
		{"REINDEX (VERBOSE) DATABASE d", kindNoTxBlock, ""},
		{"REINDEX (VERBOSE) SYSTEM", kindNoTxBlock, ""},
		{"REINDEX (VERBOSE) TABLE t", kindWrite, ""},
		{"CLUSTER", kindNoTxBlock, ""},
		{"CLUSTER VERBOSE;", kindNoTxBlock, ""},
		{"CLUSTER (VERBOSE)", kindNoTxBlock, ""},
		{"CLUSTER VERBOSE t USING i", kindWrite, ""},
		{"CLUSTER (VERBOSE) t", kindWrite, ""},
		{"DISCARD ALL", kindNoTxBlock, ""},
		{"LISTEN c", kindRead, "u"},
		{"NOTIFY c", kindRead, "u"},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", kindRead, "u"},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT " + many + " FROM t FOR SHARE", kindWrite, "u"},
		{"-- only a comment", kindEmpty, ""},
		{"", kindEmpty, ""},
		{"/* x */ ", kindEmpty, ""},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			sts := splitStatements(tt.sql)
			if len(sts) != 1 {
				t.Fatalf("split into %d statements: %v", len(sts), kinds(sts))
			}
			st := sts[0]
			var flags string
			if st.Chain {
				flags += "c"
			}
			if st.Temp {
				flags += "t"
			}
			if st.Unpreparable {
				flags += "u"
			}
			if st.CopyIn {
				flags += "i"
			}
			if st.Kind != tt.kind || flags != tt.flags {
				t.Fatalf("classify %q = %v %q, want %v %q", tt.sql, st.Kind, flags, tt.kind, tt.flags)
			}
		})
	}
}

// TestSplitCalls: what a statement calls, past comments too, and only when it runs.
func TestSplitCalls(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sql     string
		calls   string // joined by ","
		creates string
	}{
		{"SELECT f/**/(1)", "f", ""},
		{"SELECT f -- c\n (1)", "f", ""},
		{`SELECT "F" /* a */ -- b` + "\n\t(1)", "F", ""},
		{"SELECT s.f /* a /* b */ */(1), g(2)", "f,g", ""},
		{"CREATE FUNCTION g/**/() RETURNS int LANGUAGE sql AS 'SELECT 1'", "", "g"},
		{"EXPLAIN (ANALYZE false) SELECT f(1)", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			sts := splitStatements(tt.sql)
			if len(sts) != 1 {
				t.Fatalf("split into %d statements: %v", len(sts), kinds(sts))
			}
			var calls []string
			for _, c := range sts[0].Calls {
				calls = append(calls, string(foldName(c, nil)))
			}
			if got := strings.Join(calls, ","); got != tt.calls || sts[0].Creates != tt.creates {
				t.Fatalf("%q: calls %q creates %q, want %q and %q", tt.sql, got, sts[0].Creates, tt.calls, tt.creates)
			}
		})
	}
}

func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{
		"SELECT 1; SELECT 2", "SELECT 'a''b'; E'\\'' ; \"x\"\"y\"", "$a$ ; $a$; $$;$$", "/* /* */ ; */ ;",
		"-- x\n;", "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END; x", "(;);", "$", "$1;$a", "E'",
		"EXPLAIN (ANALYZE 'off', \"x\" 0) CREATE TABLE n AS SELECT f/**/(1); EXPLAIN ANALYZE VERBOSE EXECUTE q",
		"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT x.into AS insert INTO n FROM x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		sts := splitStatements(sql)
		if len(sts) == 0 {
			t.Fatal("no statements")
		}
		var b strings.Builder
		prev := 0
		for _, st := range sts {
			if st.Start != prev || st.End < st.Start || st.End > len(sql) {
				t.Fatalf("bad span %d..%d after %d in %q", st.Start, st.End, prev, sql)
			}
			b.WriteString(sql[st.Start:st.End])
			prev = st.End
		}
		if b.String() != sql {
			t.Fatalf("join changed text: %q != %q", b.String(), sql)
		}
	})
}

// TestMayUnkey: the statements after which the shim looks for tables left without a key (and
// only those pay for it).
func TestMayUnkey(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]bool{
		"CREATE TABLE t (a int)":                                               true,
		"create unlogged table t (a int)":                                      true,
		"CREATE TABLE t AS SELECT 1":                                           true,
		"CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)":                     true,
		"CREATE SCHEMA s CREATE TABLE t (a int)":                               true,
		"SELECT 1 AS a INTO t":                                                 true,
		"EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1":                           true,
		"ALTER TABLE t DROP CONSTRAINT t_pkey":                                 true,
		"ALTER TABLE t DROP COLUMN id":                                         true,
		"DROP TYPE ty CASCADE":                                                 true,
		"ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)":                  true,
		"ALTER TABLE p1 REPLICA IDENTITY USING INDEX p1_k":                     true,
		"ALTER TABLE p DETACH PARTITION p2":                                    true,
		"CREATE TEMP TABLE t (a int)":                                          false,
		"SELECT 1 AS a INTO TEMP t":                                            false,
		"CREATE INDEX i ON t (a)":                                              false,
		"CREATE FUNCTION f() RETURNS TABLE (a int) LANGUAGE sql AS 'SELECT 1'": false,
		"ALTER TABLE t ADD COLUMN b int":                                       false,
		"DROP TABLE t":                                                         false,
		"INSERT INTO t VALUES (1)":                                             false,
	} {
		if got := splitStatements(sql)[0].MayUnkey; got != want {
			t.Errorf("%s: MayUnkey %v, want %v", sql, got, want)
		}
	}
}

// TestUsingClauses: the table and the USING expressions the shim checks in an ALTER TABLE.
func TestUsingClauses(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		sql, table string
		exprs      []string
	}{
		{`ALTER TABLE t ALTER COLUMN c TYPE int USING c::int`, "t", []string{"c::int"}},
		{`alter table if exists only s."T x" * alter c set data type numeric(10, 2) using round(c, 2) /* r */ ;`, `s."T x"`, []string{"round(c, 2)"}},
		{`ALTER TABLE t ALTER type TYPE int USING type::int, ALTER b TYPE text COLLATE "C" USING ARRAY[a, b]::text, ADD COLUMN x int`, "t",
			[]string{"type::int", "ARRAY[a, b]::text"}},
		{`ALTER TABLE t ADD CONSTRAINT x EXCLUDE USING gist (c WITH &&), ALTER c TYPE int`, "t", nil},
		{`ALTER TABLE t ADD PRIMARY KEY USING INDEX i`, "t", nil},
		{`ALTER TABLE t ALTER c TYPE text USING 'a, b' || c`, "t", []string{"'a, b' || c"}},
		{`ALTER INDEX i ALTER c TYPE int USING 1`, "", nil},
		{`ALTER TABLE U&"t\0061" ALTER c TYPE int USING 1`, `"ta"`, []string{"1"}},
		{`ALTER TABLE s.u&"!0074" UESCAPE '!' ALTER c TYPE int USING 1`, `s."t"`, []string{"1"}},
	} {
		table, exprs := usingClauses(tt.sql)
		if table != tt.table || strings.Join(exprs, "|") != strings.Join(tt.exprs, "|") {
			t.Errorf("%s: %q %q, want %q %q", tt.sql, table, exprs, tt.table, tt.exprs)
		}
	}
}
