package txshim

import (
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestApplyDDLRowSecurityReset: a DDL row under its recorded role runs with row_security = on
// (c4d8500), set for it alone: the row change after it in the same transaction runs under the
// apply session's own row_security = off, and a policy that applies to the peer DSN's user (FORCE
// ROW LEVEL SECURITY on a table it owns, a policy that lets every row through) refuses it
// rather than let it depend on the policy (TestApplyRowSecurity). Coverage only.
func TestApplyDDLRowSecurityReset(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) {
		c.PeerDSN = strings.Replace(c.PeerDSN, pgtest.Superuser+"@", "applier@", 1)
	}, Options{}, `CREATE TABLE docs (id int PRIMARY KEY, tenant text, body text)`,
		`INSERT INTO docs VALUES (1, 't1', 'a')`,
		`CREATE ROLE tenant1`, `GRANT CREATE ON SCHEMA public TO tenant1`)
	for _, q := range []string{
		`CREATE ROLE applier LOGIN REPLICATION`,
		`GRANT tenant1 TO applier`,
		`GRANT CREATE ON SCHEMA public TO applier`,
		`GRANT SET ON PARAMETER session_replication_role TO applier`,
		`GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_setup(pg_lsn, timestamptz) TO applier`,
		`GRANT USAGE ON SCHEMA tandem TO applier`,
		`GRANT ALL ON ALL TABLES IN SCHEMA tandem TO applier`,
		`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tandem TO applier`,
		`ALTER TABLE docs OWNER TO applier`,
		`ALTER TABLE docs ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE docs FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY every ON docs USING (true)`,
	} {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatalf("peer: %s: %v", q, err)
		}
	}
	conn := shim.connect(t)
	ctx := capCtx(t, 30*time.Second)
	if _, err := conn.Exec(ctx, `BEGIN; SET ROLE tenant1; CREATE TABLE x (id int PRIMARY KEY); RESET ROLE; UPDATE docs SET body = 'b' WHERE id = 1; COMMIT`); err != nil {
		t.Fatal(err)
	}
	waitForLong(t, "shipped or refused", 20*time.Second, func() bool {
		return sh.Err() != nil || queryOne[int](t, p.pdb, `SELECT count(*) FROM docs WHERE body = 'b'`) == 1
	})
	if err := sh.Err(); err == nil || !strings.Contains(err.Error(), `change 2 (U on "public"."docs")`) || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("the update after the DDL was not refused for row-level security (it ran under row_security = on): %v", err)
	}
}
