package txshim

import "testing"

// TestFidelityUserSchemaUnderRole: with the default search_path ("$user", public), DDL a client
// runs after SET ROLE makes its objects in the schema named after that role, when there is
// one. The search_path recorded with the statement must say that schema: the peer, running the
// statement under the same role, must make them there too, not in public (where the role may
// not even create: the peer refused the statement, and the client's commit was rolled back).
// The same after SET SESSION AUTHORIZATION.
func TestFidelityUserSchemaUnderRole(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE ROLE owner_role`, `CREATE SCHEMA owner_role AUTHORIZATION owner_role`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"owner_role.mine", "owner_role.mine2"},
		`SET search_path = "$user", public`,
		`SET ROLE owner_role`,
		`CREATE TABLE mine (id int PRIMARY KEY, v text)`,
		`INSERT INTO mine VALUES (1, 'a')`,
		`RESET ROLE`,
		`SET SESSION AUTHORIZATION owner_role`,
		`CREATE TABLE mine2 (id int PRIMARY KEY)`,
		`INSERT INTO mine2 VALUES (1)`,
		`RESET SESSION AUTHORIZATION`,
	)
	const q = `SELECT coalesce(string_agg(n.nspname || '.' || c.relname, ' ' ORDER BY n.nspname, c.relname), '') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname IN ('mine', 'mine2')`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != r {
		t.Errorf("table mine: local %s, peer %s", l, r)
	}
}
