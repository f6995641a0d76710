package txshim

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestSessionAuthorizationDDL: DDL after SET SESSION AUTHORIZATION (pg_dump's output may set
// it, --use-set-session-authorization) was refused: the shim inserted its tandem.ddl row as
// the session's user, which that statement made a user without rights there (42501,
// 'permission denied for table ddl'). It runs as PostgreSQL runs it, and its objects are that
// user's on the peer too.
func TestSessionAuthorizationDDL(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE ROLE alice`, `GRANT CREATE ON SCHEMA public TO alice`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"owned", "owned2"},
		`SET SESSION AUTHORIZATION alice`,
		`CREATE TABLE owned (id int PRIMARY KEY, v text)`,
		`INSERT INTO owned VALUES (1, 'a')`,
		`BEGIN; CREATE TABLE owned2 (id int PRIMARY KEY); INSERT INTO owned2 VALUES (1); COMMIT`,
		`CREATE INDEX CONCURRENTLY owned_v ON owned (v)`,
	)
	if !queryOne[bool](t, p.pdb, `SELECT to_regclass('owned_v') IS NOT NULL`) {
		t.Error("peer: index owned_v (CREATE INDEX CONCURRENTLY) missing")
	}
	// The session goes on as the user the client set, as in PostgreSQL.
	wantSessionRoles(t, conn, "alice:alice:none", "after the DDL")
	fidelityStep(t, p, sh, conn, []string{"owned"},
		`RESET SESSION AUTHORIZATION`,
		`INSERT INTO owned VALUES (2, 'b')`,
	)
	wantOwners(t, p, "owned:alice owned2:alice", "owned", "owned2")
}

// TestSessionAuthorizationRoleDDL: DDL after SET SESSION AUTHORIZATION and a SET ROLE on top
// (the role the session's user may take, or that user itself) was refused: the shim dropped
// the role alone for its tandem.ddl row, leaving the session's user, which has no rights there
// either (42501). PostgreSQL runs it; the objects are the role's on both databases, and the
// session goes on under the role.
func TestSessionAuthorizationRoleDDL(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE ROLE alice`, `CREATE ROLE bob`, `GRANT bob TO alice`,
		`GRANT CREATE ON SCHEMA public TO alice, bob`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"owned", "owned2"},
		`SET SESSION AUTHORIZATION alice`,
		`SET ROLE bob`,
		`CREATE TABLE owned (id int PRIMARY KEY, v text)`,
		`INSERT INTO owned VALUES (1, 'a')`,
		`BEGIN; CREATE TABLE owned2 (id int PRIMARY KEY); INSERT INTO owned2 VALUES (1); COMMIT`,
	)
	// The session goes on under the role, as in PostgreSQL.
	wantSessionRoles(t, conn, "alice:bob:bob", "after the DDL")
	fidelityStep(t, p, sh, conn, nil, `BEGIN; CREATE TABLE gone (id int PRIMARY KEY); ROLLBACK`)
	wantSessionRoles(t, conn, "alice:bob:bob", "after the DDL rolled back")
	fidelityStep(t, p, sh, conn, []string{"owned3"},
		`SET ROLE alice`,
		`CREATE TABLE owned3 (id int PRIMARY KEY)`,
	)
	wantSessionRoles(t, conn, "alice:alice:alice", "after the DDL")
	wantOwners(t, p, "owned:bob owned2:bob owned3:alice", "owned", "owned2", "owned3")
}

// TestSessionAuthorizationDDLParameterStatus: the shim puts its tandem.ddl row in as the login
// user (asSessionUserSQL) and gives the transaction the client's user back after. PostgreSQL
// reports session_authorization and is_superuser to the client (ParameterStatus) when they
// change between two ReadyForQuery messages, and the shim's own statements each end with
// one: the client heard that its session was the login user's, a superuser's, and then its
// own again — which PostgreSQL, running the DDL alone, never says.
func TestSessionAuthorizationDDLParameterStatus(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE ROLE alice`, `CREATE ROLE bob`, `GRANT bob TO alice`,
		`GRANT CREATE ON SCHEMA public TO alice, bob`)
	catchUpToDual(t, sh, shim)
	r := dialRaw(t, shim)
	statuses := func(q string) []string {
		t.Helper()
		r.fe.Send(&pgproto3.Query{String: q})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			m, err := r.fe.Receive()
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			switch m := m.(type) {
			case *pgproto3.ParameterStatus:
				got = append(got, m.Name+"="+m.Value)
			case *pgproto3.ErrorResponse:
				t.Fatalf("%s: %s %s", q, m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				return got
			}
		}
	}
	statuses(`SET SESSION AUTHORIZATION alice`)
	for _, q := range []string{
		`CREATE TABLE owned (id int PRIMARY KEY, v text)`,
		`BEGIN; CREATE TABLE owned2 (id int PRIMARY KEY); COMMIT`,
		`CREATE INDEX CONCURRENTLY owned_v ON owned (v)`,
	} {
		if got := statuses(q); len(got) != 0 {
			t.Errorf("%s: ParameterStatus %v; PostgreSQL sends none", q, got)
		}
	}
	statuses(`SET ROLE bob`)
	if got := statuses(`CREATE TABLE owned3 (id int PRIMARY KEY)`); len(got) != 0 {
		t.Errorf("under SET ROLE: ParameterStatus %v; PostgreSQL sends none", got)
	}
	_ = p
}

// TestStartupRoleDDLParameterStatus: a client whose role is set at startup (a role in the
// startup packet, as options=-c role=... or a role's default role) was told, at its first DDL,
// is_superuser=off — the value it had from the startup — where PostgreSQL sends nothing: the
// shim held the reports of its switch to the login user and back, and compared the value at
// the end with what the client was told since the startup only.
func TestStartupRoleDDLParameterStatus(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE ROLE bob`, `GRANT CREATE ON SCHEMA public TO bob`)
	catchUpToDual(t, sh, shim)
	r := dialRawDSN(t, shim.dsn(pgtest.Superuser)+"&role=bob")
	for _, q := range []string{
		`CREATE TABLE owned (id int PRIMARY KEY, v text)`,
		`BEGIN; CREATE TABLE owned2 (id int PRIMARY KEY); COMMIT`,
	} {
		r.fe.Send(&pgproto3.Query{String: q})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for done := false; !done; {
			m, err := r.fe.Receive()
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			switch m := m.(type) {
			case *pgproto3.ParameterStatus:
				got = append(got, m.Name+"="+m.Value)
			case *pgproto3.ErrorResponse:
				t.Fatalf("%s: %s %s", q, m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				done = true
			}
		}
		if len(got) != 0 {
			t.Errorf("%s: ParameterStatus %v; PostgreSQL sends none", q, got)
		}
	}
	_ = p
}

// TestSessionAuthorizationDDLSwitchCancelled: a cancel of the client's (or its
// statement_timeout) landing on the shim's switch to the login user or back around a DDL
// statement's tandem.ddl row. The session never goes on as the login user, a superuser: the
// switch is local to the transaction the failure aborts. And the client hears of the cancel,
// as from PostgreSQL, not of a transaction aborted for no reason it was told (25P02).
func TestSessionAuthorizationDDLSwitchCancelled(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE ROLE alice`, `GRANT CREATE ON SCHEMA public TO alice`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	ctx := context.Background()
	who := func(want string) {
		t.Helper()
		var got string
		if err := conn.QueryRow(ctx, `SELECT session_user || ':' || current_user || ':' || current_setting('is_superuser')`).Scan(&got); err != nil || got != want {
			t.Fatalf("session: %q, %v; want %s", got, err, want)
		}
	}
	if _, err := conn.Exec(ctx, `SET SESSION AUTHORIZATION alice`); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{asSessionUserSQL, roleBackSQL} {
		for _, c := range []struct{ pre, post string }{{"", ""}, {"BEGIN", "ROLLBACK"}, {"BEGIN; SAVEPOINT a", "ROLLBACK TO SAVEPOINT a"}} {
			if c.pre != "" {
				if _, err := conn.Exec(ctx, c.pre); err != nil {
					t.Fatal(err)
				}
			}
			// As the cancel makes the statement it lands on fail (selfCancel needs rights
			// on the login user's backend, which the client's user has not).
			shim.hooks.ownStep.set(func(q string) string {
				if q == step {
					return `DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '57014', MESSAGE = 'canceling statement due to user request'; END$$`
				}
				return q
			})
			_, err := conn.Exec(ctx, `CREATE TABLE never (id int PRIMARY KEY)`)
			shim.hooks.ownStep.clear()
			if pgCode(err) != "57014" {
				t.Errorf("%s, cancel on %.30s: %v; want 57014, as PostgreSQL", c.pre, step, err)
			}
			// Nor is the client told that it is (ParameterStatus), as PostgreSQL never does.
			told := func(when string) {
				t.Helper()
				pc := conn.PgConn()
				if a, su := pc.ParameterStatus("session_authorization"), pc.ParameterStatus("is_superuser"); a != "alice" || su != "off" {
					t.Errorf("%s, cancel on %.30s, %s: told session_authorization=%s is_superuser=%s; want alice, off", c.pre, step, when, a, su)
				}
			}
			told("after the DDL")
			if c.post != "" {
				if _, err := conn.Exec(ctx, c.post); err != nil {
					t.Fatal(err)
				}
				who("alice:alice:off")
				told("after " + c.post)
				if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
					t.Fatal(err)
				}
			}
			who("alice:alice:off")
		}
	}
	_ = p
}

// TestSessionAuthorizationDDLRowFailedParameterStatus: the shim's tandem.ddl row for a DDL
// statement after SET SESSION AUTHORIZATION failing (a cancel landing on it), after the
// switch to the login user: PostgreSQL reverts the switch at the error and reports the
// client's own values, which the client was told already. PostgreSQL, running the client's
// statement alone, sends no ParameterStatus; the client must hear none either.
func TestSessionAuthorizationDDLRowFailedParameterStatus(t *testing.T) {
	t.Parallel()
	_, sh, shim := startShipPair(t, nil, Options{}, `CREATE ROLE alice`, `GRANT CREATE ON SCHEMA public TO alice`,
		`CREATE FUNCTION public.cancelled(text) RETURNS void LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION USING ERRCODE = '57014', MESSAGE = 'canceling statement due to user request'; END$$`)
	catchUpToDual(t, sh, shim)
	r := dialRaw(t, shim)
	run := func(q string) (statuses []string, code string) {
		t.Helper()
		r.fe.Send(&pgproto3.Query{String: q})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := r.fe.Receive()
			if err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			switch m := m.(type) {
			case *pgproto3.ParameterStatus:
				statuses = append(statuses, m.Name+"="+m.Value)
			case *pgproto3.ErrorResponse:
				code = m.Code
			case *pgproto3.ReadyForQuery:
				return statuses, code
			}
		}
	}
	run(`SET SESSION AUTHORIZATION alice`)
	for _, pre := range []string{"", "BEGIN"} {
		if pre != "" {
			run(pre)
		}
		shim.hooks.ownStep.set(func(q string) string {
			if q == ddlMarkSQL {
				return `SELECT public.cancelled($1)`
			}
			return q
		})
		got, code := run(`CREATE TABLE never (id int PRIMARY KEY)`)
		shim.hooks.ownStep.clear()
		if code != "57014" || len(got) != 0 {
			t.Errorf("%q, the row's statement cancelled: error %s, ParameterStatus %v; want 57014 and none, as PostgreSQL", pre, code, got)
		}
		if pre != "" {
			if got, _ := run(`ROLLBACK`); len(got) != 0 {
				t.Errorf("ROLLBACK after: ParameterStatus %v; PostgreSQL sends none", got)
			}
		}
	}
}

// wantSessionRoles checks conn's session_user:current_user:role against want, after what.
func wantSessionRoles(t *testing.T, conn *pgx.Conn, want, what string) {
	t.Helper()
	var who string
	if err := conn.QueryRow(context.Background(), `SELECT session_user || ':' || current_user || ':' || current_setting('role')`).Scan(&who); err != nil || who != want {
		t.Errorf("%s: %q, %v; want %s", what, who, err, want)
	}
}

// wantOwners checks that the tables named have the same owners on both databases, want
// ("table:owner …", by table name).
func wantOwners(t *testing.T, p *capPair, want string, tables ...string) {
	t.Helper()
	const q = `SELECT string_agg(c.relname || ':' || r.rolname, ' ' ORDER BY c.relname)
FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = ANY ($1)`
	if l, r := queryOne[string](t, p.ldb, q, pq.Array(tables)), queryOne[string](t, p.pdb, q, pq.Array(tables)); l != r || l != want {
		t.Errorf("owners: local %s, peer %s; want %s on both", l, r, want)
	}
}
