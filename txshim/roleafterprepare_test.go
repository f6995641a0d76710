package txshim

import (
	"strings"
	"testing"
)

// TestRoleAfterPrepare: a session that set a role (SET ROLE, not a superuser's) and, in a
// transaction, another with SET LOCAL ROLE (or NONE, back to its superuser). PREPARE
// TRANSACTION made the role in force then the prepared transaction's owner; the SET LOCAL
// ended with it, and the shim's COMMIT PREPARED ran under the session's role, neither the owner
// nor a superuser: PostgreSQL refused it (permission denied to finish prepared transaction),
// and the client heard 08007 (in doubt) for a commit PostgreSQL answers COMMIT, its transaction
// left prepared, row locks held, until a resolver's pass. Each shape runs on PostgreSQL itself
// and through the shim, with the same replies but for ParameterStatus (is_superuser): the
// shim's statements after the PREPARE report the changes of role PostgreSQL's COMMIT does not
// (it reports the value at ReadyForQuery, where it is what it was); the role after is the
// session's.
func TestRoleAfterPrepare(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE ROLE "r one" NOLOGIN; CREATE ROLE r2 NOLOGIN; GRANT ALL ON acct TO "r one", r2;
GRANT USAGE ON SCHEMA tandem TO PUBLIC; GRANT SELECT ON tandem.state TO PUBLIC` /* as Install grants */)
	for n, steps := range [][]xstep{
		{xq(`SET ROLE r2`), xq(`BEGIN`), xq(`SET LOCAL ROLE "r one"`), xq(`INSERT INTO acct VALUES (1, 1)`), xq(`COMMIT`), xq(`SELECT current_user`)},
		{xq(`SET ROLE "r one"`), xq(`BEGIN; SET LOCAL ROLE NONE; INSERT INTO acct VALUES (2, 1); COMMIT`), xq(`SELECT current_user`)},
		{xq(`SET ROLE r2`), xpipe(`BEGIN`, `SET LOCAL ROLE NONE`, `INSERT INTO acct VALUES (3, 1)`, `COMMIT`, `SELECT current_user`)},
	} {
		var want string
		for i, r := range []*rawSession{dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)} {
			r.t = t
			got := strings.ReplaceAll(r.runSteps(steps), "S ", "")
			if i == 0 {
				want = got
				c.Exec(t, `DELETE FROM acct WHERE id = $1`, n+1)
			} else if got != want {
				t.Errorf("shape %d:\nshim: %s\nPostgreSQL: %s", n, got, want)
			}
			r.conn.Close()
		}
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d transactions left prepared", n)
	}
	if n := rowCount(t, c, "true"); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	checkDual(t, peer.take(), 3)
}
