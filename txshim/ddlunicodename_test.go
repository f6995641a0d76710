package txshim

import "testing"

// TestAlterTableUnicodeNameChecked: ALTER TABLE of a table named U&"…" went through every check
// that needs the table's name — the lexer read the name as U, a table that does not exist: ADD
// COLUMN with a default that is not a constant (random()), ALTER COLUMN … TYPE … USING random()
// and SET LOGGED of an unlogged table with rows all ran on a table with rows, the first two
// giving the rows values each database computed for itself (the peer's differed without an
// error), the last leaving the peer's copy without the rows. The name is decoded now.
func TestAlterTableUnicodeNameChecked(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, v int)`,
		`INSERT INTO items SELECT g, g FROM generate_series(1, 3) g`,
		`CREATE UNLOGGED TABLE u (id int PRIMARY KEY)`)
	if err := exec(`INSERT INTO u VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE U&"items" ADD COLUMN r float8 DEFAULT random()`,
		`ALTER TABLE public.U&"\0069tems" ADD COLUMN r float8 DEFAULT random()`,
		`ALTER TABLE u&"!0069tems" UESCAPE '!' ALTER COLUMN v TYPE float8 USING random()`,
		`ALTER TABLE U&"u" SET LOGGED`,
	} {
		err := exec(q)
		if pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	if err := exec(`ALTER TABLE U&"items" ADD COLUMN c int DEFAULT 7`); err != nil {
		t.Fatal(err)
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(DISTINCT c::text, ',') FROM items`); got != "7" {
		t.Errorf("peer's rows: %s", got)
	}
}
