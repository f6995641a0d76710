package txshim

import "testing"

// TestSetRoleUnkeyDDL: DDL under a role the client set (SET ROLE) that leaves a table without
// a key — ALTER TABLE … REPLICA IDENTITY DEFAULT on a keyless table it owns (which runs the
// after-DDL step since that step checks partitions), CREATE TABLE without a key, DROP of a
// key — was refused with "permission denied for table ddl": the step recorded its ALTER TABLE
// … REPLICA IDENTITY FULL in tandem.ddl under that role, which has no rights there. It is
// recorded under the session's user, as the statement is (asSessionUserSQL), and ships.
func TestSetRoleUnkeyDDL(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, `CREATE ROLE maker NOLOGIN`, `GRANT CREATE ON SCHEMA public TO maker`,
		`CREATE TABLE owned (a int, b text)`, `ALTER TABLE owned OWNER TO maker`)
	for _, q := range []string{
		`SET ROLE maker`,
		`ALTER TABLE owned REPLICA IDENTITY DEFAULT`,
		`CREATE TABLE nokey (a int, b text)`,
		`CREATE TABLE keyed (id int PRIMARY KEY, b text)`,
		`ALTER TABLE keyed DROP CONSTRAINT keyed_pkey`,
		`INSERT INTO owned VALUES (1, 'a')`, `INSERT INTO nokey VALUES (1, 'a')`, `INSERT INTO keyed VALUES (1, 'a')`,
		`UPDATE owned SET b = 'x'`, `UPDATE nokey SET b = 'x'`, `UPDATE keyed SET b = 'x'`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The role stays the client's.
	if err := exec(`DO $$BEGIN IF current_user <> 'maker' THEN RAISE EXCEPTION 'role %', current_user; END IF; END$$`); err != nil {
		t.Errorf("after the DDL: %v", err)
	}
	shipped()
	const q = `SELECT string_agg(relname || ' ' || relreplident::text, ', ' ORDER BY relname) FROM pg_class WHERE relname IN ('owned', 'nokey', 'keyed')`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != "keyed f, nokey f, owned f" || r != l {
		t.Errorf("replica identities: local %q, peer %q; want FULL on each", l, r)
	}
}
