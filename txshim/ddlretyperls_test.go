package txshim

import "testing"

// TestRetypeUnderRowSecurityOff: the check of an ALTER COLUMN … TYPE's conversion plans a query
// of the table (retypeCheckSQL). A session with row_security off (as a pg_dump script sets it)
// whose role a policy applies to — FORCE ROW LEVEL SECURITY, the owner's member — had that
// query refused (42501, "query would be affected by row-level security policy") and the safe
// int to bigint retype with it (0A000), though the statement itself reads no row through a
// policy. The plan is made under row_security on, in a subtransaction.
func TestRetypeUnderRowSecurityOff(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE migrator`, `CREATE ROLE owners`, `GRANT owners TO migrator`,
		`CREATE TABLE sec (id int PRIMARY KEY, v int)`, `INSERT INTO sec VALUES (1, 1), (2, 2)`,
		`ALTER TABLE sec ENABLE ROW LEVEL SECURITY`, `ALTER TABLE sec FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY p ON sec USING (id > 1)`, `ALTER TABLE sec OWNER TO owners`)
	for _, q := range []string{
		`SET ROLE migrator`,
		`SET row_security = off`,
		`ALTER TABLE sec ALTER COLUMN v TYPE bigint`,
		`RESET row_security`,
		`RESET ROLE`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
	q := `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'sec'::regclass AND attname = 'v'`
	if l := queryOne[string](t, p.ldb, q); l != "bigint" {
		t.Errorf("v is %s, want bigint", l)
	}
}
