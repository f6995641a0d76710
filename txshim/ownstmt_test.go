package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestQuietDeferrableCommit: a SERIALIZABLE READ ONLY DEFERRABLE transaction in which nothing
// ran takes no snapshot, and PostgreSQL commits it at once; the shim's check before the commit,
// a query, took one, which waits for a safe snapshot as long as another session holds a
// serializable read-write transaction open: the COMMIT hung for that long. Each shape is run on
// PostgreSQL itself and through the shim, with the same replies, at once.
func TestQuietDeferrableCommit(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
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
		}
	}
}
