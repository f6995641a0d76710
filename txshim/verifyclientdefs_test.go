package txshim

import (
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestVerifyClientDefinitions: DDL run on one database only (bypassing the shim) on what the
// apply's rows never meet but the applications do once the other site is master — a plain
// view, a column's default, a foreign key, a trigger that fires on the master only (its
// definition, its function, whether it is enabled, the order triggers fire in) — left every
// table's columns and rows alike, and verify called the databases identical. Each is a
// difference, naming the table or view and what differs; the same definitions made
// differently (other names of constraints and triggers, a foreign key NOT VALID, columns in
// another order) are not.
func TestVerifyClientDefinitions(t *testing.T) {
	t.Parallel()
	fn := func(name, body string) string {
		return `CREATE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN ` + body + ` RETURN NEW; END$$`
	}
	cases := []verifyCase{
		{name: "view query", want: []string{`view "public"."v" is defined by another query on each database`},
			both:  []string{`CREATE TABLE t (id int PRIMARY KEY)`},
			local: []string{`CREATE VIEW v AS SELECT id FROM t`},
			peer:  []string{`CREATE VIEW v AS SELECT id FROM t WHERE id > 0`}},
		{name: "view on one side", want: []string{`view "public"."v" exists only on the local database`},
			both:  []string{`CREATE TABLE t (id int PRIMARY KEY)`},
			local: []string{`CREATE VIEW v AS SELECT id FROM t`}},
		{name: "view option", want: []string{`view "public"."v" has options (check_option=local) on the local database but () on the peer`},
			both:  []string{`CREATE TABLE t (id int PRIMARY KEY)`, `CREATE VIEW v AS SELECT id FROM t WHERE id > 0`},
			local: []string{`ALTER VIEW v SET (check_option = local)`}},
		{name: "column default", want: []string{`table "public"."t": column "v" DEFAULT 'x'::text on the peer database only`},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v text)`},
			peer: []string{`ALTER TABLE t ALTER v SET DEFAULT 'x'`}},
		{name: "foreign key", want: []string{`table "public"."t": constraint FOREIGN KEY (pid) REFERENCES public.p(id) on the local database only`},
			both:  []string{`CREATE TABLE p (id int PRIMARY KEY)`, `CREATE TABLE t (id int PRIMARY KEY, pid int)`},
			local: []string{`ALTER TABLE t ADD FOREIGN KEY (pid) REFERENCES p`}},
		{name: "foreign key action", want: []string{`ON DELETE CASCADE on the peer database only`},
			both:  []string{`CREATE TABLE p (id int PRIMARY KEY)`},
			local: []string{`CREATE TABLE t (id int PRIMARY KEY, pid int REFERENCES p)`},
			peer:  []string{`CREATE TABLE t (id int PRIMARY KEY, pid int REFERENCES p ON DELETE CASCADE)`}},
		{name: "trigger", want: []string{`table "public"."t": trigger BEFORE INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION public.f()`, "on the peer database only"},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`, fn("f", "")},
			peer: []string{`CREATE TRIGGER audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`}},
		{name: "trigger function", want: []string{`table "public"."t": trigger BEFORE INSERT`, "function definition md5"},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`, fn("f", ""),
				`CREATE TRIGGER audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`},
			peer: []string{`CREATE OR REPLACE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.v := 0; RETURN NEW; END$$`}},
		{name: "trigger disabled", want: []string{`table "public"."t": trigger (DISABLED) BEFORE INSERT`, "on the peer database only"},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`, fn("f", ""),
				`CREATE TRIGGER audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`},
			peer: []string{`ALTER TABLE t DISABLE TRIGGER audit`}},
		{name: "trigger order", want: []string{`table "public"."t": triggers fire in the order`, "on the local database only"},
			both: []string{`CREATE TABLE t (id int PRIMARY KEY, v int)`, fn("f", "NEW.v := NEW.v * 2;"), fn("g", "NEW.v := NEW.v + 1;")},
			local: []string{`CREATE TRIGGER a BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`,
				`CREATE TRIGGER b BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION g()`},
			peer: []string{`CREATE TRIGGER a BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION g()`,
				`CREATE TRIGGER b BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`}},
		// Not a difference: the apply and resync map values by column name (TestApplyColumnOrder).
		{name: "column order",
			local: []string{`CREATE TABLE t (id int PRIMARY KEY, a int, b int)`},
			peer:  []string{`CREATE TABLE t (id int PRIMARY KEY, b int, a int)`}},
		{name: "made differently",
			both: []string{`CREATE TABLE p (id int PRIMARY KEY)`, fn("f", ""), fn("g", "")},
			local: []string{`CREATE TABLE t (id int PRIMARY KEY, pid int CONSTRAINT t_p REFERENCES p, v text DEFAULT 'x', d int)`,
				`CREATE TRIGGER audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`,
				`CREATE TRIGGER b1 AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()`, `CREATE TRIGGER b2 AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION g()`,
				`CREATE VIEW v AS SELECT id, v FROM t`, `ALTER TABLE t DROP COLUMN d`},
			peer: []string{`CREATE TABLE t (id int PRIMARY KEY, pid int, v text)`, `ALTER TABLE t ALTER v SET DEFAULT 'x'`,
				`ALTER TABLE t ADD CONSTRAINT other_name FOREIGN KEY (pid) REFERENCES p NOT VALID`,
				`CREATE TRIGGER t_audit BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()`,
				`CREATE TRIGGER c1 AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()`, `CREATE TRIGGER c2 AFTER UPDATE ON t FOR EACH ROW EXECUTE FUNCTION g()`,
				`CREATE VIEW v AS SELECT t.id, t.v FROM t`}},
	}
	verifyCases(t, "client", cases)
}

// TestInstallWarnsClientDefinitions: install takes databases whose schemas differ only where
// the applications meet them, not the apply (TestInstallSchemaDifferences, "harmless"), but
// says so, naming each difference as verify does, rather than go on as if they were identical.
func TestInstallWarnsClientDefinitions(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY, v text)`)
	p.peer.Exec(t, `ALTER TABLE t ALTER v SET DEFAULT 'x'`)
	var logged logBuffer
	if err := Install(capCtx(t, 60*time.Second), "site1", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(&logged, nil))); err != nil {
		t.Fatal(err)
	}
	if want := `table \"public\".\"t\": column \"v\" DEFAULT 'x'::text on the peer database only`; !strings.Contains(logged.String(), want) {
		t.Errorf("install's log does not name %s:\n%s", want, logged.String())
	}
}

// verifyCase is a case of verifyCases: statements run on both databases, then on each; the
// differences verify must name (each in one of them), none when want is nil.
type verifyCase struct {
	name        string
	both        []string
	local, peer []string
	want        []string
	count       int // how many differences, when not 0
}

// verifyCases runs each case in databases of its own (prefix and its index) on one pair of
// clusters, and checks what Verify names.
func verifyCases(t *testing.T, prefix string, cases []verifyCase) {
	t.Helper()
	// One pair of clusters, each case in a database of its own on each.
	p := startCapPair(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("%s%d", prefix, i)
			p.both(t, "CREATE DATABASE "+name)
			ldb, pdb := p.local.Open(t, name), p.peer.Open(t, name)
			run := func(dbs []*sql.DB, stmts []string) {
				t.Helper()
				for _, s := range stmts {
					for _, db := range dbs {
						if _, err := db.Exec(s); err != nil {
							t.Fatalf("%s: %v", s, err)
						}
					}
				}
			}
			run([]*sql.DB{ldb, pdb}, tc.both)
			run([]*sql.DB{ldb}, tc.local)
			run([]*sql.DB{pdb}, tc.peer)
			diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN(name), p.peer.DSN(name))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("verify: %q", diffs)
			if tc.want == nil && len(diffs) > 0 {
				t.Fatalf("verify called the same definitions, made differently, different: %q", diffs)
			}
			if tc.count > 0 && len(diffs) != tc.count {
				t.Errorf("%d differences, want %d", len(diffs), tc.count)
			}
			for _, w := range tc.want {
				found := false
				for _, d := range diffs {
					found = found || strings.Contains(d, w)
				}
				if !found {
					t.Errorf("no difference names %q: %q", w, diffs)
				}
			}
		})
	}
}

// TestVerifyRowSecurityDefinitions: row-level security made on one database only (bypassing
// the shim) — enabled or forced on a table, a policy, a policy's expression, command, roles or
// kind — leaves the rows alike (verify reads them with row_security off, as the apply writes
// them), yet once the other site is master the applications' users see or may write other
// rows: verify called such databases identical. Each is a difference; the same policies
// named differently are not. A rule that fires on the master only is one too.
func TestVerifyRowSecurityDefinitions(t *testing.T) {
	t.Parallel()
	const table = `CREATE TABLE t (id int PRIMARY KEY, owner text)`
	cases := []verifyCase{
		{name: "enabled", want: []string{`table "public"."t": row-level security enabled on the peer database only`},
			both: []string{table}, peer: []string{`ALTER TABLE t ENABLE ROW LEVEL SECURITY`}},
		{name: "forced", want: []string{`table "public"."t": row-level security enabled, forced on the local database only`},
			both:  []string{table, `ALTER TABLE t ENABLE ROW LEVEL SECURITY`},
			local: []string{`ALTER TABLE t FORCE ROW LEVEL SECURITY`}},
		{name: "policy", want: []string{`table "public"."t": policy PERMISSIVE FOR ALL TO PUBLIC USING ((owner = CURRENT_USER)) on the local database only`},
			both:  []string{table, `ALTER TABLE t ENABLE ROW LEVEL SECURITY`},
			local: []string{`CREATE POLICY mine ON t USING (owner = current_user)`}},
		{name: "policy expression", want: []string{`USING ((owner = CURRENT_USER)) on the local database only`, `USING ((owner = SESSION_USER)) on the peer database only`},
			both:  []string{table, `ALTER TABLE t ENABLE ROW LEVEL SECURITY`},
			local: []string{`CREATE POLICY mine ON t USING (owner = current_user)`},
			peer:  []string{`CREATE POLICY mine ON t USING (owner = session_user)`}},
		{name: "policy command and kind", want: []string{`policy RESTRICTIVE FOR INSERT TO PUBLIC WITH CHECK ((owner = CURRENT_USER)) on the peer database only`},
			both:  []string{table, `ALTER TABLE t ENABLE ROW LEVEL SECURITY`},
			local: []string{`CREATE POLICY mine ON t FOR INSERT WITH CHECK (owner = current_user)`},
			peer:  []string{`CREATE POLICY mine ON t AS RESTRICTIVE FOR INSERT WITH CHECK (owner = current_user)`}},
		{name: "policy roles", want: []string{`policy PERMISSIVE FOR SELECT TO pg_read_all_data USING (true) on the peer database only`},
			both:  []string{table},
			local: []string{`CREATE POLICY r ON t FOR SELECT TO pg_monitor USING (true)`},
			peer:  []string{`CREATE POLICY r ON t FOR SELECT TO pg_read_all_data USING (true)`}},
		{name: "rule on the master", want: []string{`table "public"."t": rule: ON DELETE TO public.t DO INSTEAD NOTHING; on the local database only`},
			both:  []string{table},
			local: []string{`CREATE RULE keep AS ON DELETE TO t DO INSTEAD NOTHING`}},
		{name: "made differently",
			both:  []string{table, `ALTER TABLE t ENABLE ROW LEVEL SECURITY`},
			local: []string{`CREATE POLICY mine ON t USING (owner = current_user)`, `CREATE POLICY r ON t FOR SELECT TO pg_monitor, pg_read_all_data USING (true)`},
			peer:  []string{`CREATE POLICY t_mine ON t USING (owner = current_user)`, `CREATE POLICY r2 ON t FOR SELECT TO pg_read_all_data, pg_monitor USING (true)`}},
	}
	verifyCases(t, "rls", cases)
}

// TestVerifyRoutinesAndExtensions: a function or procedure replaced, made or dropped on one
// database only (bypassing the shim), or an extension installed there alone or at another
// version, changes what the applications' calls do once the other site is master — while no
// row differs: verify called such databases identical. Each is a difference, naming the
// routine by its signature or the extension; a routine made by an extension on both is not.
func TestVerifyRoutinesAndExtensions(t *testing.T) {
	t.Parallel()
	const f = `CREATE FUNCTION price(n int) RETURNS numeric LANGUAGE sql AS $$SELECT n * 1.19$$`
	cases := []verifyCase{
		{name: "function body", want: []string{`function public.price(integer) is defined otherwise on each database`},
			both: []string{f}, peer: []string{`CREATE OR REPLACE FUNCTION price(n int) RETURNS numeric LANGUAGE sql AS $$SELECT n * 1.20$$`}},
		{name: "function volatility", want: []string{`function public.price(integer) is defined otherwise on each database`},
			both: []string{f}, local: []string{`ALTER FUNCTION price(int) IMMUTABLE`}},
		{name: "function on one side", want: []string{`function public.price(integer) exists only on the local database`},
			local: []string{f}},
		{name: "overload on one side", want: []string{`function public.price(bigint) exists only on the peer database`},
			both: []string{f}, peer: []string{`CREATE FUNCTION price(n bigint) RETURNS numeric LANGUAGE sql AS $$SELECT n * 1.19$$`}},
		{name: "procedure", want: []string{`procedure public.touch() exists only on the peer database`},
			peer: []string{`CREATE PROCEDURE touch() LANGUAGE sql AS $$SELECT 1$$`}},
		{name: "extension", want: []string{`extension "pg_trgm" exists only on the local database`}, count: 1,
			local: []string{`CREATE EXTENSION pg_trgm`}},
		{name: "same extension", both: []string{`CREATE EXTENSION pg_trgm`, f}},
	}
	verifyCases(t, "routine", cases)
}
