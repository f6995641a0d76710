package txshim

import "testing"

// TestApplyDDLRoleRowSecurity: DDL that reads rows (CREATE MATERIALIZED VIEW, REFRESH) run by a
// client under a role (SET ROLE) that a row-level security policy applies to: the local database
// ran it under the session's row_security (on), the policy filtering the rows; the peer runs it
// under the same role (TestApplyDDLRole), and must not refuse it where the local database did
// not — the apply session's row_security = off (f07081c) is for the apply's own row changes, and
// under it PostgreSQL refused the statement ("query would be affected by row-level security
// policy"): the dual commit refused, and every later one.
func TestApplyDDLRoleRowSecurity(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE ROLE tenant1`, `GRANT CREATE ON SCHEMA public TO tenant1`,
		`CREATE TABLE docs (id int PRIMARY KEY, tenant text)`,
		`INSERT INTO docs VALUES (1, 't1'), (2, 't2')`,
		`GRANT SELECT ON docs TO tenant1`,
		`ALTER TABLE docs ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY own ON docs USING (tenant = 't1')`)
	for _, q := range []string{
		`SET ROLE tenant1`,
		`CREATE MATERIALIZED VIEW mine AS SELECT id FROM docs`,
		`REFRESH MATERIALIZED VIEW mine`,
		`RESET ROLE`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
	if l, r := queryOne[int](t, p.ldb, `SELECT count(*) FROM mine`), queryOne[int](t, p.pdb, `SELECT count(*) FROM mine`); l != 1 || r != 1 {
		t.Errorf("mine has %d rows on the local database and %d on the peer, want 1 (the policy's)", l, r)
	}
}
