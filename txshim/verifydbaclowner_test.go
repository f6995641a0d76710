package txshim

import "testing"

// TestVerifyDatabasePrivilegesOwnersDiffer: the database's privileges are compared by
// privilege and grantee, the owner's own left out, as the databases' owners may differ between
// the sites. Where the application's role owns the database on one site and is granted its
// privileges on the other (GRANT ALL ON DATABASE), it may connect and create alike on both,
// yet its grants were named as on that database only. A grantee that owns either database is
// left out.
func TestVerifyDatabasePrivilegesOwnersDiffer(t *testing.T) {
	t.Parallel()
	on := func(stmt string) string {
		return `DO $$BEGIN EXECUTE format('` + stmt + `', current_database()); END$$`
	}
	cases := []verifyCase{
		{name: "owner on one, granted on the other",
			both:  []string{`CREATE ROLE dbown_app`},
			local: []string{on(`ALTER DATABASE %I OWNER TO dbown_app`)},
			peer:  []string{on(`GRANT ALL ON DATABASE %I TO dbown_app`)}},
		// Others' privileges are still compared.
		{name: "another role granted", want: []string{`database: privilege CONNECT to dbown_other on the peer database only`}, count: 1,
			both:  []string{`CREATE ROLE dbown_app2`, `CREATE ROLE dbown_other`},
			local: []string{on(`ALTER DATABASE %I OWNER TO dbown_app2`)},
			peer:  []string{on(`GRANT ALL ON DATABASE %I TO dbown_app2`), on(`GRANT CONNECT ON DATABASE %I TO dbown_other`)}},
	}
	verifyCases(t, "dbaclown", cases)
}
