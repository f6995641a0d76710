package txshim

import (
	"strings"
	"testing"
	"time"
)

// TestApplyDDLRowSecurityReset: a DDL row under its recorded role runs with row_security = on
// (c4d8500), set for it alone: the row change after it in the same transaction runs under the
// apply session's own row_security = off, and a policy that applies to the peer DSN's user (FORCE
// ROW LEVEL SECURITY on a table it owns, a policy that lets every row through) refuses it
// rather than let it depend on the policy (TestApplyRowSecurity). Coverage only.
func TestApplyDDLRowSecurityReset(t *testing.T) {
	t.Parallel()
	p, sh, conn, ctx := applierPair(t, []string{
		`CREATE TABLE docs (id int PRIMARY KEY, tenant text, body text)`,
		`INSERT INTO docs VALUES (1, 't1', 'a')`,
		`CREATE ROLE tenant1`, `GRANT CREATE ON SCHEMA public TO tenant1`},
		`GRANT tenant1 TO applier`,
		`GRANT CREATE ON SCHEMA public TO applier`,
		`ALTER TABLE docs OWNER TO applier`,
		`ALTER TABLE docs ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE docs FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY every ON docs USING (true)`)
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
