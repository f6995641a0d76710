package txshim

import "testing"

// TestAddedColumnEmptyTableUnderPolicy: the has-rows look of 7c7b9e1 reads a table under
// row_security = off and takes PostgreSQL's refusal there (42501, a policy applies to the
// client's role: an owner that set FORCE ROW LEVEL SECURITY) for rows. An empty table such an
// owner altered — ADD COLUMN … DEFAULT now(), SET LOGGED, ALTER COLUMN … TYPE … USING now(),
// as a fresh deployment's migrations run them — was refused (0A000) as if it had rows. A table
// whose file holds no page has none: the rewrite the statement made left it so, or it never
// had any.
func TestAddedColumnEmptyTableUnderPolicy(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE keeper`,
		`CREATE TABLE vault (id int PRIMARY KEY, v float8)`,
		`ALTER TABLE vault OWNER TO keeper`,
		`ALTER TABLE vault ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE vault FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY mine ON vault USING (id > 0)`,
		`CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)`,
		`ALTER TABLE scratch OWNER TO keeper`,
		`ALTER TABLE scratch ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE scratch FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY mine ON scratch USING (id > 0)`,
		`CREATE TABLE parted (id int, v float8, PRIMARY KEY (id)) PARTITION BY RANGE (id)`,
		`CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100)`,
		`INSERT INTO parted VALUES (1, 1)`,
		`ALTER TABLE parted OWNER TO keeper`,
		`ALTER TABLE parted_1 OWNER TO keeper`,
		`ALTER TABLE parted ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE parted FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY mine ON parted USING (false)`)
	if err := exec(`SET ROLE keeper`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE vault ADD COLUMN at timestamptz DEFAULT now()`,
		`ALTER TABLE vault ALTER COLUMN v TYPE float8 USING random()`,
		`ALTER TABLE scratch SET LOGGED`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	// A partitioned table's own file holds nothing: its partitions' rows count.
	for _, q := range []string{
		`ALTER TABLE parted ADD COLUMN at timestamptz DEFAULT now()`,
		`ALTER TABLE parted ALTER COLUMN v TYPE float8 USING random()`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
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
