package txshim

import "testing"

// TestVerifyDatabasePrivilegesLonelyOwner: the database's privileges are named by privilege
// and grantee alone, as the databases' owners — their grantor — may differ between the sites;
// yet a privilege whose grantor the other cluster lacks was left out, as a table's is. With
// one site's database owned by a role of that site alone, its privileges (PUBLIC's CONNECT and
// TEMPORARY, granted by that owner) were all left out and the other's, the same, named as on
// that database only. The grantor is not looked at.
func TestVerifyDatabasePrivilegesLonelyOwner(t *testing.T) {
	t.Parallel()
	on := func(stmt string) string {
		return `DO $$BEGIN EXECUTE format('` + stmt + `', current_database()); END$$`
	}
	cases := []verifyCase{
		{name: "owner of one cluster only",
			local: []string{`CREATE ROLE dbgr_lonely`, on(`ALTER DATABASE %I OWNER TO dbgr_lonely`)}},
		// A privilege on one side only is still named.
		{name: "revoked", want: []string{`database: privilege TEMPORARY to PUBLIC on the local database only`}, count: 1,
			local: []string{`CREATE ROLE dbgr_lonely2`, on(`ALTER DATABASE %I OWNER TO dbgr_lonely2`)},
			peer:  []string{on(`REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC`)}},
	}
	verifyCases(t, "dbaclgr", cases)
}
