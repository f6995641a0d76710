package txshim

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestDDLSetFromCurrent: SET name FROM CURRENT in DDL through the shim (CREATE FUNCTION,
// ALTER FUNCTION, ALTER ROLE/DATABASE) takes the value the session has when the statement
// runs. The peer ran the statement under the apply session's settings, which are not the
// client's: the search_path recorded resolved ("$user" dropped: public, not "$user", public),
// statement_timeout and the like the apply's own. The function was defined otherwise on each
// database, and behaved otherwise after a failover (verify reported it). Such DDL is refused
// (0A000) before it runs, in both protocols, unless the setting is one the peer's run is given
// verbatim (the row's settings: TimeZone and the like), which ships.
func TestDDLSetFromCurrent(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t, `CREATE FUNCTION public.f2() RETURNS int LANGUAGE sql AS 'SELECT 2'`)
	ctx := context.Background()
	if err := exec(`SET search_path = "$user", public`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`SET statement_timeout = '7s'`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`SET TimeZone = 'Asia/Tokyo'`); err != nil {
		t.Fatal(err)
	}
	cfg := `SELECT coalesce(array_to_string(proconfig, '|'), '') FROM pg_proc WHERE oid = '%s'::regprocedure`
	refused := []struct{ q, fn string }{
		{`CREATE FUNCTION public.f1() RETURNS int LANGUAGE sql SET search_path FROM CURRENT AS 'SELECT 1'`, "public.f1()"},
		{`CREATE OR REPLACE FUNCTION public.f2() RETURNS int LANGUAGE sql SET work_mem = '8MB' SET "statement_timeout" FROM CURRENT AS 'SELECT 2'`, "public.f2()"},
		{`ALTER FUNCTION public.f2() SET search_path FROM CURRENT`, "public.f2()"},
		{`alter function public.f2() set statement_timeout from current`, "public.f2()"},
		{`CREATE PROCEDURE public.p1() LANGUAGE sql SET lock_timeout FROM CURRENT AS 'SELECT 1'`, "public.p1()"},
		{`ALTER ROLE CURRENT_USER SET search_path FROM CURRENT`, ""},
		{`ALTER DATABASE app SET search_path FROM CURRENT`, ""},
	}
	for _, c := range refused {
		for mode, run := range map[string]func() error{
			"simple": func() error { return exec(c.q) },
			"extended": func() error {
				_, err := conn.PgConn().ExecParams(ctx, c.q, nil, nil, nil, nil).Close()
				return err
			},
		} {
			err := run()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "FROM CURRENT") {
				if err == nil && c.fn != "" {
					shipped()
					l := queryOne[string](t, p.ldb, strings.Replace(cfg, "%s", c.fn, 1))
					pr := queryOne[string](t, p.pdb, strings.Replace(cfg, "%s", c.fn, 1))
					t.Errorf("%s (%s): shipped, %s's settings %q locally, %q on the peer; want 0A000 naming FROM CURRENT", c.q, mode, c.fn, l, pr)
					continue
				}
				t.Errorf("%s (%s): err = %v, want 0A000 naming FROM CURRENT", c.q, mode, err)
			}
		}
	}
	// A SET of the session's own, the value written out, and a setting the peer's run is given
	// as the session had it: these run, and ship the same.
	for _, q := range []string{
		`SET work_mem FROM CURRENT`,
		`CREATE FUNCTION public.f3() RETURNS int LANGUAGE sql SET search_path = "$user", public SET statement_timeout = '7s' AS 'SELECT 3'`,
		`CREATE FUNCTION public.f4() RETURNS int LANGUAGE sql SET TimeZone FROM CURRENT AS 'SELECT 4'`,
		`CREATE FUNCTION public.f5() RETURNS text LANGUAGE sql AS 'SELECT ''SET search_path FROM CURRENT'''`,
	} {
		if _, err := conn.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	for _, fn := range []string{"public.f2()", "public.f3()", "public.f4()", "public.f5()"} {
		q := strings.Replace(cfg, "%s", fn, 1)
		if l, pr := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != pr {
			t.Errorf("%s's settings: %q locally, %q on the peer", fn, l, pr)
		}
	}
	if got := queryOne[string](t, p.pdb, strings.Replace(cfg, "%s", "public.f4()", 1)); got != "TimeZone=Asia/Tokyo" {
		t.Errorf("f4's settings on the peer: %q, want TimeZone=Asia/Tokyo", got)
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_proc WHERE proname IN ('f1', 'p1')`); n != 0 {
		t.Errorf("refused functions made locally: %d", n)
	}
}

// TestFromCurrentSetting: which statements fromCurrentSetting reads a SET … FROM CURRENT in.
func TestFromCurrentSetting(t *testing.T) {
	for q, want := range map[string]string{
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path FROM CURRENT AS 'SELECT 1'`:      "search_path",
		`create or replace procedure p() language sql set "Work_Mem" from current as $$select 1$$`:     "Work_Mem",
		`ALTER ROUTINE f SET plpgsql.extra_warnings FROM CURRENT`:                                      "plpgsql.extra_warnings",
		`ALTER ROLE r IN DATABASE d SET TimeZone FROM CURRENT`:                                         "",
		`ALTER FUNCTION f() SET TimeZone FROM CURRENT SET lock_timeout FROM CURRENT`:                   "lock_timeout",
		`ALTER FUNCTION f() SET "TimeZone" FROM CURRENT`:                                               "",
		`CREATE FUNCTION f() RETURNS text LANGUAGE sql AS 'SELECT ''SET search_path FROM CURRENT'''`:   "",
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = "$user", public AS 'SELECT 1'`: "",
		`CREATE VIEW v AS SELECT * FROM current`:                                                       "",
		`SET search_path FROM CURRENT`:                                                                 "",
		// SQL, not settings: a column set aliased x of a table current.
		`CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT set x FROM current; END`:   "",
		`CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN (SELECT set x FROM current)`:            "",
		`CREATE VIEW v AS SELECT set x FROM current`:                                                 "",
		`CREATE RULE r AS ON INSERT TO t DO ALSO SELECT set x FROM current`:                          "",
		`CREATE FUNCTION g() RETURNS int LANGUAGE sql SET a FROM CURRENT BEGIN ATOMIC SELECT 1; END`: "a",
		`ALTER USER r SET work_mem FROM CURRENT`:                                                     "work_mem",
		`CREATE FUNCTION f() RETURNS int LANGUAGE sql /* SET a FROM CURRENT */ SET b -- x
		 FROM CURRENT AS 'SELECT 1'`: "b",
	} {
		sts := splitStatements(q)
		if len(sts) != 1 {
			t.Fatalf("%s: %d statements", q, len(sts))
		}
		if got := fromCurrentSetting(q, sts[0]); got != want {
			t.Errorf("%s: %q, want %q", q, got, want)
		}
	}
}
