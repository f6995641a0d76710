package txshim

import (
	"testing"
	"time"
)

// TestApplyDDLRowSecurityPeerUser: a DDL row the client ran without SET ROLE runs on the peer
// as the peer DSN's user, which need not be the local session's (local_dsn's): a row-level
// security policy that applies to it alone (a table it does not own) filtered the rows a
// CREATE MATERIALIZED VIEW read there under row_security = on (c4d8500), and the peer's view
// silently held fewer rows than the local one — where the apply is to be refused rather than
// miss rows a policy hides from its user (README, TestApplyRowSecurity), as it was before.
func TestApplyDDLRowSecurityPeerUser(t *testing.T) {
	t.Parallel()
	p, sh, conn, ctx := applierPair(t, []string{
		`CREATE TABLE docs (id int PRIMARY KEY, tenant text)`,
		`INSERT INTO docs VALUES (1, 't1'), (2, 't2')`,
		`ALTER TABLE docs ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY own ON docs USING (tenant = 't1')`},
		`GRANT CREATE ON SCHEMA public TO applier`,
		`GRANT SELECT ON docs TO applier`)
	if _, err := conn.Exec(ctx, `CREATE MATERIALIZED VIEW mine AS SELECT id FROM docs`); err != nil {
		t.Logf("CREATE MATERIALIZED VIEW: %v", err)
	}
	waitForLong(t, "the DDL shipped or refused", 20*time.Second, func() bool {
		return sh.Err() != nil || queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_matviews WHERE matviewname = 'mine'`) == 1
	})
	if err := sh.Err(); err != nil {
		t.Logf("refused: %v", err)
		return
	}
	if l, r := queryOne[int](t, p.ldb, `SELECT count(*) FROM mine`), queryOne[int](t, p.pdb, `SELECT count(*) FROM mine`); l != r {
		t.Errorf("mine has %d rows on the local database and %d on the peer: a policy the local session's user was not under hid rows from the peer's", l, r)
	}
}
