package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestFailedCheckCommitAndChainLeavesNoTransaction: write skew, the doomed transaction ends with
// COMMIT AND CHAIN. PostgreSQL fails it with 40001 and leaves the session idle: a failed commit
// chains no transaction, and the next statement is an autocommit one. In solo mode the shim's
// check before the COMMIT AND CHAIN it pipelines failed with 40001, and the COMMIT AND CHAIN,
// meeting an aborted transaction, rolled back and began the next one: the client was told the
// session was idle, and the INSERT it sent next ran in that transaction, never committed.
func TestFailedCheckCommitAndChainLeavesNoTransaction(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE oncall (id int PRIMARY KEY, on_call bool NOT NULL)`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	direct := func() *pgx.Conn {
		conn, err := pgx.Connect(ctx, c.DSN(c.Database()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	type pair struct {
		name   string
		c1, c2 *pgx.Conn
		mode   Mode
	}
	pairs := []pair{{"postgres", direct(), direct(), ModeDual}, {"dual", s.connect(t), s.connect(t), ModeDual}, {"solo", s.connect(t), s.connect(t), ModeSolo}}
	for _, p := range pairs {
		s.SetMode(p.mode, 1)
		if _, err := p.c1.Exec(ctx, `TRUNCATE oncall; INSERT INTO oncall VALUES (1, true), (2, true)`); err != nil {
			t.Fatal(err)
		}
		for _, conn := range []*pgx.Conn{p.c1, p.c2} {
			if _, err := conn.Exec(ctx, `BEGIN ISOLATION LEVEL SERIALIZABLE; SELECT count(*) FROM oncall WHERE on_call`); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.c1.Exec(ctx, `UPDATE oncall SET on_call = false WHERE id = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := p.c2.Exec(ctx, `UPDATE oncall SET on_call = false WHERE id = 2`); err != nil {
			t.Fatal(err)
		}
		if _, err := p.c1.Exec(ctx, `COMMIT`); err != nil {
			t.Fatalf("%s: first commit: %v", p.name, err)
		}
		_, err := p.c2.Exec(ctx, `COMMIT AND CHAIN`)
		st := p.c2.PgConn().TxStatus()
		// The next statement, autocommit as far as the client knows.
		_, ierr := p.c2.Exec(ctx, `INSERT INTO oncall VALUES (3, true)`)
		st2 := p.c2.PgConn().TxStatus()
		var n int
		cerr := p.c1.QueryRow(ctx, `SELECT count(*) FROM oncall WHERE id = 3`).Scan(&n)
		t.Logf("%s: COMMIT AND CHAIN: %v; status after %c; INSERT after: %v, status %c; row seen by another session: %d %v",
			p.name, err, st, ierr, st2, n, cerr)
		if p.name != "postgres" && (pgCode(err) != "40001" || st != 'I' || st2 != 'I' || n != 1) {
			t.Errorf("%s: COMMIT AND CHAIN: code %s, status %c; the INSERT after it: status %c, seen by another session %d times; want 40001, I, I, 1 as from PostgreSQL", p.name, pgCode(err), st, st2, n)
		}
		p.c2.Exec(ctx, "ROLLBACK")
	}
}
