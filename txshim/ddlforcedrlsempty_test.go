package txshim

import (
	"slices"
	"testing"
)

// TestAddedColumnEmptyTableUnderPolicy: the has-rows look of 7c7b9e1 reads a table under
// row_security = off and takes PostgreSQL's refusal there (42501, a policy applies to the
// client's role: an owner that set FORCE ROW LEVEL SECURITY) for rows. An empty table such an
// owner altered — ADD COLUMN … DEFAULT now(), SET LOGGED, ALTER COLUMN … TYPE … USING now(),
// as a fresh deployment's migrations run them — was refused (0A000) as if it had rows. A table
// whose file holds no page has none: the rewrite the statement made left it so, or it never
// had any.
func TestAddedColumnEmptyTableUnderPolicy(t *testing.T) {
	t.Parallel()
	conn, exec, shipped := keeperPair(t, "mine", "id > 0", false, slices.Concat([]string{
		`CREATE TABLE parted (id int, v float8, PRIMARY KEY (id)) PARTITION BY RANGE (id)`,
		`CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (100)`,
		`INSERT INTO parted VALUES (1, 1)`,
		`ALTER TABLE parted_1 OWNER TO keeper`,
	}, forcedRLS("parted", "mine", "false"))...)
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
	shipped()
}
