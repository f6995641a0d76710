package txshim

import "testing"

// TestAddedColumnRowsHiddenByPolicy: the checks that refuse DDL computing values anew in a
// table's rows (ADD COLUMN … DEFAULT random(), ALTER COLUMN … TYPE … USING random()) looked
// for the rows under the client's role, which a row-level security policy applies to on a
// table its owner set FORCE ROW LEVEL SECURITY: a policy that hid every row from the owner made
// the table look empty, the DDL ran, and the peer's rows (the rewrite reads past any policy)
// differed without an error. So did SET LOGGED of an UNLOGGED table whose rows the peer lacks.
func TestAddedColumnRowsHiddenByPolicy(t *testing.T) {
	t.Parallel()
	conn, exec, shipped := keeperPair(t, "sealed", "false", true, `GRANT CREATE ON SCHEMA public TO keeper`)
	for _, q := range []string{
		`ALTER TABLE vault ADD COLUMN r float8 DEFAULT random()`,
		`ALTER TABLE vault ALTER COLUMN v TYPE float8 USING random()`,
		`ALTER TABLE scratch SET LOGGED`,
	} {
		err := exec(q)
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
}
