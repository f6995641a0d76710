package txshim

import "testing"

// TestRetypeUsingGeneratedColumnWithoutCreate: a table's owner that may not create objects in
// the table's schema has a USING expression judged as a stored generated column's
// (TestRetypeUsingOwnerWithoutCreate), and PostgreSQL refuses a generated column that reads
// another (42P17, as it refuses a volatile one): ALTER COLUMN … TYPE … USING g * 10, g a
// generated column, was refused (0A000) though immutable. The generated columns it names are
// read as their expressions now; USING random() + g is still refused, and so is an expression
// the probe cannot judge (a whole-row reference of a function that is not immutable). Any
// other error of the probe was taken for an immutable expression: on a table that happens to
// have a column of the probe's name, USING now()::text went through, each database its own
// moment. Such an error refuses the statement now.
func TestRetypeUsingGeneratedColumnWithoutCreate(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE ROLE keeper`,
		`CREATE TABLE vault (id int PRIMARY KEY, v int, w int, g int GENERATED ALWAYS AS (v + 1) STORED)`,
		`INSERT INTO vault (id, v, w) SELECT g, g, g FROM generate_series(1, 3) g`,
		`CREATE FUNCTION stamp_of(vault) RETURNS bigint LANGUAGE sql STABLE AS $$SELECT extract(epoch FROM now())::bigint$$`,
		`CREATE TABLE odd (id int PRIMARY KEY, v int, tandem_immutable_probe int)`,
		`INSERT INTO odd VALUES (1, 1, 1)`,
		`ALTER TABLE odd OWNER TO keeper`,
		`ALTER TABLE vault OWNER TO keeper`,
		`ALTER FUNCTION stamp_of(vault) OWNER TO keeper`)
	if err := exec(`SET ROLE keeper`); err != nil {
		t.Fatal(err)
	}
	if err := exec(`ALTER TABLE vault ALTER COLUMN w TYPE bigint USING g * 10`); err != nil {
		t.Errorf("USING g * 10: %v", err)
		if conn.PgConn().TxStatus() != 'I' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER TABLE vault ALTER COLUMN v TYPE float8 USING random() + g`,
		`ALTER TABLE vault ALTER COLUMN v TYPE bigint USING stamp_of(vault)`,
		// The probe fails for another reason (its column is there): taken for immutable.
		`ALTER TABLE odd ALTER COLUMN v TYPE text USING clock_timestamp()::text`,
		`ALTER TABLE odd ALTER COLUMN v TYPE text USING now()::text`,
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
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(w::text, ',' ORDER BY id) FROM vault`); got != "20,30,40" {
		t.Errorf("peer's rows: %s", got)
	}
}
