package txshim

import "testing"

// TestVerifyDefaultPrivileges: ALTER DEFAULT PRIVILEGES run on one database only left every
// object alike, and verify called the databases identical; after a failover each table,
// sequence or function made on the new master got other privileges than the old one gave it,
// and the applications' roles could not use what they made. Each default privilege on one
// side only is a difference, in a schema or for every schema; the same made otherwise is not.
func TestVerifyDefaultPrivileges(t *testing.T) {
	t.Parallel()
	cases := []verifyCase{
		{name: "in a schema", want: []string{`default privileges on new relations belonging to role `, ` in schema s: privilege dacl_rd=r/`, `on the local database only`}, count: 1,
			both: []string{`CREATE ROLE dacl_rd`, `CREATE SCHEMA s`}, local: []string{`ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO dacl_rd`}},
		{name: "every schema", want: []string{`default privileges on new functions belonging to role `, `privilege =X/`, `on the peer database only`},
			both: []string{}, local: []string{`ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`}},
		{name: "made otherwise",
			both:  []string{`CREATE ROLE dacl_same`},
			local: []string{`ALTER DEFAULT PRIVILEGES GRANT SELECT, UPDATE ON SEQUENCES TO dacl_same`, `ALTER DEFAULT PRIVILEGES REVOKE UPDATE ON SEQUENCES FROM dacl_same`},
			peer:  []string{`ALTER DEFAULT PRIVILEGES GRANT SELECT ON SEQUENCES TO dacl_same`}},
	}
	verifyCases(t, "dacl", cases)
}
