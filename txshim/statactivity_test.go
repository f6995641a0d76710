package txshim

import "testing"

// TestSetRoleDDLStatActivityRevoked: a database that keeps pg_stat_activity from its users
// (REVOKE SELECT ... FROM PUBLIC, as hardening guides advise): DDL under a role the client
// set ran before 3931de9, and must still; and it runs after SET SESSION AUTHORIZATION.
func TestSetRoleDDLStatActivityRevoked(t *testing.T) {
	t.Parallel()
	_, _, exec, shipped := ddlPair(t, `CREATE ROLE maker NOLOGIN`, `CREATE ROLE alice NOLOGIN`, `GRANT CREATE ON SCHEMA public TO maker, alice`,
		`REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC`)
	for _, q := range []string{
		`SET ROLE maker`,
		`CREATE TABLE owned (id int PRIMARY KEY, b text)`,
		`RESET ROLE`,
		`SET SESSION AUTHORIZATION alice`,
		`CREATE TABLE owned2 (id int PRIMARY KEY, b text)`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
