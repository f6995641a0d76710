package txshim

import "testing"

// TestSessionAuthorizationUnkeyDDL: DDL that leaves a table without a key after SET SESSION
// AUTHORIZATION (with and without a role on top): the shim records the REPLICA IDENTITY FULL
// it gives the table under the login user, in the statement's check, and the session goes on
// as the client's user.
func TestSessionAuthorizationUnkeyDDL(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t, `CREATE ROLE alice NOLOGIN`, `CREATE ROLE maker NOLOGIN`, `GRANT maker TO alice`,
		`GRANT CREATE ON SCHEMA public TO alice, maker`)
	for _, q := range []string{
		`SET SESSION AUTHORIZATION alice`,
		`CREATE TABLE nokey (a int, b text)`,
		`CREATE TABLE keyed (id int PRIMARY KEY, b text)`,
		`ALTER TABLE keyed DROP CONSTRAINT keyed_pkey`,
		`SET ROLE maker`,
		`CREATE TABLE keyed2 (id int PRIMARY KEY, b text)`,
		`ALTER TABLE keyed2 DROP CONSTRAINT keyed2_pkey`,
		`INSERT INTO keyed2 VALUES (1, 'a')`, `UPDATE keyed2 SET b = 'x'`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := exec(`DO $$BEGIN IF session_user <> 'alice' OR current_user <> 'maker' THEN RAISE EXCEPTION 'user % role %', session_user, current_user; END IF; END$$`); err != nil {
		t.Errorf("after the DDL: %v", err)
	}
	shipped()
	const q = `SELECT string_agg(relname || ' ' || relreplident::text, ', ' ORDER BY relname) FROM pg_class WHERE relname IN ('nokey', 'keyed', 'keyed2')`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != "keyed f, keyed2 f, nokey f" || r != l {
		t.Errorf("replica identities: local %q, peer %q; want FULL on each", l, r)
	}
}
