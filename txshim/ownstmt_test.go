package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestQuietDeferrableCommit: a SERIALIZABLE READ ONLY DEFERRABLE transaction in which nothing
// ran takes no snapshot, and PostgreSQL commits it at once; the shim's check before the commit,
// a query, took one, which waits for a safe snapshot as long as another session holds a
// serializable read-write transaction open: the COMMIT hung for that long. Each shape is run on
// PostgreSQL itself and through the shim, with the same replies, at once.
func TestQuietDeferrableCommit(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE TABLE qdef (id int PRIMARY KEY)`)
	tx, err := c.Open(t, c.Database()).BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, `SELECT count(*) FROM qdef`, `INSERT INTO qdef VALUES (1)`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	const begin = "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"
	commitPortal := xstep{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "c", Query: "COMMIT"}, &pgproto3.Bind{DestinationPortal: "cp", PreparedStatement: "c"}, &pgproto3.Sync{}}, until: "Z"}
	execPortal := xstep{msgs: []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: "cp"}, &pgproto3.Sync{}}, until: "Z"}
	for n, steps := range [][]xstep{
		{xq(begin), xq("COMMIT")},
		{xq(begin + "; COMMIT")},
		{xq("BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE"), xq("COMMIT")},
		{xq(begin), xq("SET LOCAL statement_timeout = '1h'; SAVEPOINT a; RELEASE a"), xq("COMMIT")},
		{xpipe(begin, "COMMIT")},
		{xq(begin + "; COMMIT AND CHAIN"), xq("COMMIT")},
		{xq(begin), commitPortal, execPortal},
		{xq("SELECT 1"), xq(begin), xq("COMMIT")},
		// What follows the quiet COMMIT runs as it would.
		{xq(begin + "; COMMIT; INSERT INTO qdef VALUES (2); SELECT count(*) FROM qdef")},
		{xpipe(begin, "COMMIT", "INSERT INTO qdef VALUES (3)", "SELECT count(*) FROM qdef")},
		{xq(begin + "; COMMIT AND CHAIN; SHOW transaction_deferrable; COMMIT")},
		{xq("BEGIN; COMMIT AND CHAIN; INSERT INTO qdef VALUES (4); COMMIT"), xq("SELECT count(*) FROM qdef")},
	} {
		var want string
		for i, r := range []*rawSession{dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)} {
			r.t = t
			start := time.Now()
			got := r.runSteps(steps)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("shape %d, session %d (0: PostgreSQL): took %v: %s", n, i, d, got)
			}
			if i == 0 {
				want = got
			} else if got != want {
				t.Errorf("shape %d: shim: %s; PostgreSQL: %s", n, got, want)
			}
			r.conn.Close()
			c.Exec(t, `DELETE FROM qdef WHERE id > 1`)
		}
	}
	// The writes after a quiet COMMIT commit dual: (2), (3), (4).
	checkDual(t, peer.take(), 3)
}

// TestSetRoleDDL: DDL under a role the client set (SET ROLE) that may create tables but has no
// rights on Tandem's schema: PostgreSQL runs it; the shim records it in tandem.ddl in the
// client's transaction, under that role.
func TestSetRoleDDL(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, schemaSQL)
	c.Exec(t, `INSERT INTO tandem.state VALUES (1, 1, 'site1', true) ON CONFLICT DO NOTHING;
CREATE ROLE maker NOLOGIN;
GRANT CREATE ON SCHEMA public TO maker`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	conn := s.connect(t)
	ctx := context.Background()
	for _, q := range []string{"SET ROLE maker", "CREATE TABLE made (id int PRIMARY KEY)", "BEGIN", "CREATE TABLE made2 (id int PRIMARY KEY)", "COMMIT",
		"RESET ROLE", "BEGIN", "SET LOCAL ROLE maker", "CREATE TABLE made3 (id int PRIMARY KEY)", "COMMIT"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Each made by maker, the role kept for the transaction and the session.
	if got := queryOne[string](t, c.Open(t, c.Database()), `SELECT string_agg(tableowner, ' ' ORDER BY tablename) FROM pg_tables WHERE tablename LIKE 'made%'`); got != "maker maker maker" {
		t.Errorf("owners %q", got)
	}
	if got := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM tandem.ddl WHERE stmt LIKE 'CREATE TABLE made%'`); got != 3 {
		t.Errorf("%d statements recorded", got)
	}
	var role string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != pgtest.Superuser {
		t.Errorf("after the SET LOCAL ROLE's transaction: %q %v", role, err)
	}
	conn.Exec(ctx, "SET ROLE maker")
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != "maker" {
		t.Errorf("after SET ROLE: %q %v", role, err)
	}
}

// TestDDLRecordMessages: recording DDL under the session's own role adds no messages.
func TestDDLRecordMessages(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, schemaSQL)
	steps := []xstep{xq("CREATE TABLE made (id int PRIMARY KEY)"), xq("BEGIN"), xq("CREATE TABLE made2 (id int PRIMARY KEY)"), xq("COMMIT")}
	want := dialRawDSN(t, c.DSN(c.Database())).runSteps(steps)
	c.Exec(t, `DROP TABLE made, made2`)
	r := dialRaw(t, s)
	if got := r.runSteps(steps); got != want {
		t.Errorf("shim: %s\nPostgreSQL: %s", got, want)
	}
}

// TestSetRoleIndexConcurrently: CREATE INDEX CONCURRENTLY under a role the client set, which
// owns the table: the shim records it in tandem.ddl once it ran, under that role.
func TestSetRoleIndexConcurrently(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, schemaSQL)
	c.Exec(t, `INSERT INTO tandem.state VALUES (1, 1, 'site1', true) ON CONFLICT DO NOTHING;
CREATE ROLE maker NOLOGIN;
GRANT CREATE ON SCHEMA public TO maker;
CREATE TABLE idx (id int PRIMARY KEY, v int);
ALTER TABLE idx OWNER TO maker`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	conn := s.connect(t)
	ctx := context.Background()
	for _, q := range []string{"SET ROLE maker", "CREATE INDEX CONCURRENTLY idx_v ON idx (v)"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if got := queryOne[int](t, c.Open(t, c.Database()), `SELECT count(*) FROM tandem.ddl WHERE stmt LIKE '%idx_v%'`); got != 1 {
		t.Errorf("%d statements recorded", got)
	}
}
