package txshim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// applierPair starts a shipping pair whose peer DSN's user is applier, a role made on the peer
// with what the apply needs and no more (no superuser), after the statements local (run on
// both databases before it starts), then runs the statements peer there (its grants, its
// row-level security): it returns the pair, its shipper, a connection through its shim and a
// 30-second context.
func applierPair(t *testing.T, local []string, peer ...string) (*capPair, *Shipper, *pgx.Conn, context.Context) {
	t.Helper()
	p, sh, shim := startShipPair(t, func(c *ShipperConfig) {
		c.PeerDSN = strings.Replace(c.PeerDSN, pgtest.Superuser+"@", "applier@", 1)
	}, Options{}, local...)
	for _, q := range append([]string{
		`CREATE ROLE applier LOGIN REPLICATION`,
		`GRANT SET ON PARAMETER session_replication_role TO applier`,
		`GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), pg_replication_origin_session_setup(text), pg_replication_origin_xact_setup(pg_lsn, timestamptz) TO applier`,
		`GRANT USAGE ON SCHEMA tandem TO applier`,
		`GRANT ALL ON ALL TABLES IN SCHEMA tandem TO applier`,
		`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tandem TO applier`,
	}, peer...) {
		if _, err := p.pdb.Exec(q); err != nil {
			t.Fatalf("peer: %s: %v", q, err)
		}
	}
	return p, sh, shim.connect(t), capCtx(t, 30*time.Second)
}

// TestApplyRowSecurity: the peer DSN's user need not be a superuser, and row-level security
// applies to it on a table it owns with FORCE ROW LEVEL SECURITY (or one it does not own). The
// apply session left row_security at its default (on): a policy that hid the row from it made
// the apply of an UPDATE find no row, taken for a divergence — "needs resync", though the peer
// held the row — where resync's copy and verify, which pin row_security = off (allRows), fail
// naming the policy. The apply pins it too: the refusal names row-level security (already at
// the INSERT, which the policy let through: the apply is not to depend on what a policy
// shows its user).
func TestApplyRowSecurity(t *testing.T) {
	t.Parallel()
	const table = `CREATE TABLE docs (id int PRIMARY KEY, tenant text, body text)`
	p, sh, conn, ctx := applierPair(t, []string{table},
		`ALTER TABLE docs OWNER TO applier`,
		`ALTER TABLE docs ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE docs FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY add ON docs FOR INSERT WITH CHECK (true)`,
		`CREATE POLICY own ON docs USING (tenant = current_setting('app.tenant', true))`)
	for _, q := range []string{`INSERT INTO docs VALUES (1, 't1', 'a')`, `UPDATE docs SET body = 'b' WHERE id = 1`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	waitForLong(t, "the update shipped or refused", 20*time.Second, func() bool {
		return sh.Err() != nil || queryOne[int](t, p.pdb, `SELECT count(*) FROM docs WHERE body = 'b'`) == 1
	})
	err := sh.Err()
	if err == nil {
		t.Fatal("the update was applied under a policy that hides the row from the peer DSN's user")
	}
	if !strings.Contains(err.Error(), "row-level security") {
		t.Fatalf("the peer's refusal does not name row-level security: %v", err)
	}
}
