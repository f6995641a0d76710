package txshim

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestHeldProcAfterFailedFlushPart: an extended request whose first part, sent before a Flush,
// failed (PostgreSQL then skips the rest of the request up to its Sync), and whose part after
// the Flush runs a procedure, arriving while the commits are held (catch-up's tail). The shim's
// reading of idle_session_timeout at the gate (passGate) went with a Sync of its own, which
// ended the failed request on the backend: the CALL, which PostgreSQL skips, ran and committed.
// Each way (PostgreSQL itself, the shim with a hold in place) gives the same replies and rows.
func TestHeldProcAfterFailedFlushPart(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE p(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 1) $$`)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	ctx := capCtx(t, 30*time.Second)
	for n, shape := range []struct {
		steps []xstep
		hold  time.Duration // how long the commits are held
	}{
		{[]xstep{xmsgs("E", "SELECT 1/0", &pgproto3.Flush{}), xmsgs("Z", "CALL p(1)", &pgproto3.Sync{}), xq("SELECT count(*) FROM acct")}, 600 * time.Millisecond},
		// No ReadyForQuery was sent before the CALL: the client's timeout does not run while
		// the request waits at the gate, held well past it. The timeout is not shorter than a
		// loaded machine may take between a reply and the client's next request (at 200ms,
		// PostgreSQL itself ended the session: 57P05).
		{[]xstep{xq("SET idle_session_timeout = '2s'"), xmsgs("C", "SELECT 1", &pgproto3.Flush{}), xmsgs("Z", "CALL p(2)", &pgproto3.Sync{}), xq("SELECT count(*) FROM acct")}, 6 * time.Second},
	} {
		steps := shape.steps
		var want string
		for i, r := range []*rawSession{dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)} {
			r.t = t
			if i == 1 {
				release, err := s.HoldCommits(ctx)
				if err != nil {
					t.Fatal(err)
				}
				go func() { time.Sleep(shape.hold); release() }()
			}
			got := r.runSteps(steps)
			r.conn.Close()
			if i == 0 {
				want = got
			} else if got != want {
				t.Errorf("shape %d, held:\nshim: %s\nPostgreSQL: %s", n, got, want)
			}
			c.Exec(t, `DELETE FROM acct`)
		}
	}
}
