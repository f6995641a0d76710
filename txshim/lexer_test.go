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
	tests := []struct {
		sql   string
		parts []string
	}{
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1; SELECT 2;", []string{"SELECT 1;", " SELECT 2;"}},
		{"SELECT ';'; SELECT 2", []string{"SELECT ';';", " SELECT 2"}},
		{"SELECT 'it''s; x'; SELECT 2", []string{"SELECT 'it''s; x';", " SELECT 2"}},
		{`SELECT E'a\';b'; SELECT 2`, []string{`SELECT E'a\';b';`, " SELECT 2"}},
		{`SELECT e'\\'; SELECT 2`, []string{`SELECT e'\\';`, " SELECT 2"}},
		{`SELECT "a;""b"; SELECT 2`, []string{`SELECT "a;""b";`, " SELECT 2"}},
		{"SELECT $$a;b$$; SELECT 2", []string{"SELECT $$a;b$$;", " SELECT 2"}},
		{"SELECT $x$a;$$;b$x$; SELECT 2", []string{"SELECT $x$a;$$;b$x$;", " SELECT 2"}},
		{"SELECT $1; SELECT 2", []string{"SELECT $1;", " SELECT 2"}},
		{"SELECT a$b; SELECT 2", []string{"SELECT a$b;", " SELECT 2"}},
		{"SELECT 1 -- x;y\n; SELECT 2", []string{"SELECT 1 -- x;y\n;", " SELECT 2"}},
		{"SELECT /* a /* b; */ c; */ 1; SELECT 2", []string{"SELECT /* a /* b; */ c; */ 1;", " SELECT 2"}},
		{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1",
			[]string{"CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));", " SELECT 1"}},
		{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END; SELECT 3",
			[]string{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END;", " SELECT 3"}},
		{"BEGIN; INSERT INTO t VALUES (1); COMMIT", []string{"BEGIN;", " INSERT INTO t VALUES (1);", " COMMIT"}},
		{"SELECT 'unterminated; x", []string{"SELECT 'unterminated; x"}},
		{"", []string{""}},
		{"SELECT 1;  ", []string{"SELECT 1;", "  "}},
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
		})
	}
}

func TestClassify(t *testing.T) {
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
		{"WITH x AS (SELECT 1) SELECT * FROM x", kindRead, ""},
		{"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", kindWrite, ""},
		{"VALUES (1)", kindRead, ""},
		{"TABLE t", kindRead, ""},
		{"SHOW work_mem", kindRead, ""},
		{"SET search_path = a", kindRead, ""},
		{"RESET ALL", kindRead, ""},
		{"EXPLAIN SELECT 1", kindRead, ""},
		{"EXPLAIN ANALYZE DELETE FROM t", kindWrite, ""},
		{"EXPLAIN ANALYZE SELECT 1", kindRead, ""},
		{"SELECT pg_notify('c', 'x')", kindRead, "u"},
		{"INSERT INTO t VALUES ('SELECT')", kindWrite, ""},
		{"update t set a = 1", kindWrite, ""},
		{"DELETE FROM t", kindWrite, ""},
		{"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", kindWrite, ""},
		{"TRUNCATE t", kindWrite, ""},
		{"COPY t FROM STDIN", kindWrite, "i"},
		{"COPY t TO STDOUT", kindRead, ""},
		{"COPY (SELECT a FROM t) TO STDOUT", kindRead, ""},
		{"DO $$BEGIN END$$", kindWrite, ""},
		{"DO $$BEGIN PERFORM committed(); END$$", kindWrite, ""},
		{"DO $$BEGIN INSERT INTO t VALUES (1); COMMIT; END$$", kindNoTxBlock, ""},
		{"DO LANGUAGE plpgsql 'BEGIN ROLLBACK; END'", kindNoTxBlock, ""},
		{"BEGIN", kindBegin, ""},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", kindBegin, ""},
		{"start transaction read only", kindBegin, ""},
		{"COMMIT", kindCommit, ""},
		{"END", kindCommit, ""},
		{"COMMIT AND CHAIN", kindCommit, "c"},
		{"COMMIT AND NO CHAIN", kindCommit, ""},
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
		{"DISCARD ALL", kindNoTxBlock, ""},
		{"LISTEN c", kindRead, "u"},
		{"NOTIFY c", kindRead, "u"},
		{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", kindRead, "u"},
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

func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{
		"SELECT 1; SELECT 2", "SELECT 'a''b'; E'\\'' ; \"x\"\"y\"", "$a$ ; $a$; $$;$$", "/* /* */ ; */ ;",
		"-- x\n;", "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END; x", "(;);", "$", "$1;$a", "E'",
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
