package txshim

import "testing"

// TestVerifyDefaultPrivilegesLonelyRole: a role the other cluster lacks (a site's own role: an
// administrator's, the shim's user at that site) with default privileges in every schema
// (ALTER DEFAULT PRIVILEGES FOR ROLE … without IN SCHEMA) was named as differing: the other
// database, recording none for it, was given the role's built-in ones, which name that role,
// and kept them, while the recorded ones were left out as naming a role the other cluster
// lacks. Roles are the clusters' (diffObjectFacts): such a role's default privileges are left
// out on both sides, as in a schema they were.
func TestVerifyDefaultPrivilegesLonelyRole(t *testing.T) {
	t.Parallel()
	cases := []verifyCase{
		{name: "every schema",
			local: []string{`CREATE ROLE dacl_lonely`, `ALTER DEFAULT PRIVILEGES FOR ROLE dacl_lonely REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC`}},
		{name: "every schema, peer",
			peer: []string{`CREATE ROLE dacl_lonely_peer`, `ALTER DEFAULT PRIVILEGES FOR ROLE dacl_lonely_peer GRANT USAGE ON TYPES TO PUBLIC`,
				`ALTER DEFAULT PRIVILEGES FOR ROLE dacl_lonely_peer REVOKE ALL ON TABLES FROM dacl_lonely_peer`}},
		// A role on both still has its default privileges compared.
		{name: "role on both", want: []string{`default privileges on new relations belonging to role dacl_both: privilege dacl_both=arwdDxt/dacl_both on the peer database only`}, count: 1,
			both: []string{`CREATE ROLE dacl_both`}, local: []string{`ALTER DEFAULT PRIVILEGES FOR ROLE dacl_both REVOKE ALL ON TABLES FROM dacl_both`}},
	}
	verifyCases(t, "dacllonely", cases)
}
