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
	_, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE keeper`,
		`CREATE TABLE vault (id int PRIMARY KEY, v float8)`,
		`INSERT INTO vault SELECT g, g FROM generate_series(1, 3) g`,
		`ALTER TABLE vault OWNER TO keeper`,
		`GRANT CREATE ON SCHEMA public TO keeper`,
		`ALTER TABLE vault ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE vault FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY sealed ON vault USING (false)`,
		`CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)`,
		`INSERT INTO scratch VALUES (1)`,
		`ALTER TABLE scratch OWNER TO keeper`,
		`ALTER TABLE scratch ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE scratch FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY sealed ON scratch USING (false)`)
	if err := exec(`SET ROLE keeper`); err != nil {
		t.Fatal(err)
	}
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
	if err := exec(`RESET ROLE`); err != nil {
		t.Fatal(err)
	}
	shipped()
}
