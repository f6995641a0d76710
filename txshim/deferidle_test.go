package txshim

import (
	"context"
	"testing"
	"time"
)

// TestDeferrableDefaultsCommit: a session whose defaults are SERIALIZABLE, READ ONLY and
// DEFERRABLE (a reporting role's, set with ALTER ROLE … SET) that writes in a READ WRITE
// transaction. The shim's statements of its own outside the client's transaction — the one
// that turns idle_session_timeout off behind PREPARE TRANSACTION, and the one that puts it back
// — ran in implicit transactions with those defaults: a query there waits for a safe snapshot,
// that is for every serializable read-write transaction open, the session's own prepared one
// among them, which only the shim's COMMIT PREPARED behind that query ends: the COMMIT hung for
// good. PostgreSQL commits at once, also while another session holds a serializable read-write
// transaction open. Each shape runs on PostgreSQL itself and through the shim, with the same
// replies, at once.
func TestDeferrableDefaultsCommit(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE TABLE ddef (id int PRIMARY KEY)`)
	tx, err := c.Open(t, c.Database()).BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, `SELECT count(*) FROM ddef`, `INSERT INTO ddef VALUES (0)`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	const defaults = "SET default_transaction_isolation = serializable; SET default_transaction_read_only = on; SET default_transaction_deferrable = on"
	for n, steps := range [][]xstep{
		{xq(defaults), xq("BEGIN READ WRITE"), xq("INSERT INTO ddef VALUES (1)"), xq("COMMIT"), xq("SHOW transaction_read_only")},
		{xq(defaults + "; SET idle_session_timeout = '1h'"), xq("BEGIN READ WRITE; INSERT INTO ddef VALUES (2); COMMIT"), xq("SHOW idle_session_timeout")},
		{xq(defaults), xpipe("BEGIN READ WRITE", "INSERT INTO ddef VALUES (3)", "COMMIT AND CHAIN", "INSERT INTO ddef VALUES (4)", "COMMIT")},
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
				t.Errorf("shape %d:\nshim: %s\nPostgreSQL: %s", n, got, want)
			}
			r.conn.Close()
			c.Exec(t, `DELETE FROM ddef WHERE id > 0`)
		}
	}
	checkDual(t, peer.take(), 4)
}
