package txshim

import "testing"

// TestVerifyDatabasePrivileges: the database's own privileges (GRANT or REVOKE CONNECT,
// CREATE, TEMPORARY ON DATABASE), changed on one database only, left every object alike and
// verify called the databases identical; after a failover the applications' roles could not
// connect to the new master, or make their schemas or temporary tables there. Each privilege
// on one side only is a difference — by the privilege and its grantee, as the databases' names
// and owners may differ between the sites —, the same granted otherwise is not.
func TestVerifyDatabasePrivileges(t *testing.T) {
	t.Parallel()
	on := func(stmt string) string {
		return `DO $$BEGIN EXECUTE format('` + stmt + `', current_database()); END$$`
	}
	cases := []verifyCase{
		{name: "connect revoked", want: []string{`database: privilege CONNECT to PUBLIC on the peer database only`}, count: 1,
			local: []string{on(`REVOKE CONNECT ON DATABASE %I FROM PUBLIC`)}},
		{name: "create granted", want: []string{`database: privilege CREATE to dbacl_app on the local database only`}, count: 1,
			both: []string{`CREATE ROLE dbacl_app`}, local: []string{on(`GRANT CREATE ON DATABASE %I TO dbacl_app`)}},
		{name: "granted otherwise",
			both:  []string{`CREATE ROLE dbacl_same`},
			local: []string{on(`GRANT ALL ON DATABASE %I TO dbacl_same`), on(`REVOKE TEMPORARY ON DATABASE %I FROM dbacl_same`)},
			peer:  []string{on(`GRANT CONNECT, CREATE ON DATABASE %I TO dbacl_same`)}},
	}
	verifyCases(t, "dbacl", cases)
}
