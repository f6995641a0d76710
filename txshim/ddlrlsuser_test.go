package txshim

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestApplyDDLRowSecurityPeerUser: a DDL row the client ran without SET ROLE runs on the peer
// as the peer DSN's user, which need not be the local session's (local_dsn's): a row-level
// security policy that applies to it alone (a table it does not own) filtered the rows a
// CREATE MATERIALIZED VIEW read there under row_security = on (c4d8500), and the peer's view
// silently held fewer rows than the local one — where the apply is to be refused rather than
// miss rows a policy hides from its user (README, TestApplyRowSecurity), as it was before.
func TestApplyDDLRowSecurityPeerUser(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) {
		c.PeerDSN = strings.Replace(c.PeerDSN, pgtest.Superuser+"@", "applier@", 1)
	}, Options{},
		`CREATE TABLE docs (id int PRIMARY KEY, tenant text)`,
		`INSERT INTO docs VALUES (1, 't1'), (2, 't2')`,
		`ALTER TABLE docs ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY own ON docs USING (tenant = 't1')`)
	for _, q := range []string{
		`CREATE ROLE applier LOGIN REPLICATION`,
		`GRANT SET ON PARAMETER session_replication_role TO applier`,
		`GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_setup(pg_lsn, timestamptz) TO applier`,
		`GRANT USAGE ON SCHEMA tandem TO applier`,
		`GRANT ALL ON ALL TABLES IN SCHEMA tandem TO applier`,
		`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tandem TO applier`,
		`GRANT CREATE ON SCHEMA public TO applier`,
		`GRANT SELECT ON docs TO applier`,
	} {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatalf("peer: %s: %v", q, err)
		}
	}
	conn := shim.connect(t)
	ctx := capCtx(t, 30*time.Second)
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
