package txshim

import "testing"

// TestRetypeEnumCastSyntaxNotRefused: the immutability probe reads a cast to an enum written
// c::mood as the enum's input, the same on the peer (TestRetypeSafeNotRefused), but not the same
// cast written CAST(c AS mood): ALTER … TYPE mood USING CAST(c AS mood) of a text column with
// rows was refused as not immutable.
func TestRetypeEnumCastSyntaxNotRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE items (id int PRIMARY KEY, c text, d text)`,
		`INSERT INTO items VALUES (1, 'sad', 'ok'), (2, 'happy', 'sad')`)
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN c TYPE mood USING CAST(c AS mood)`,
		`ALTER TABLE items ALTER COLUMN d TYPE public.mood USING cast ( (lower(d)) as public.mood )`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	q := `ALTER TABLE items ALTER COLUMN c TYPE timestamptz USING CAST(CAST(c AS text) AS timestamptz)`
	if err := exec(q); pgCode(err) != "0A000" {
		t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(c::text || d::text, ',' ORDER BY id) FROM items`); got != "sadok,happysad" {
		t.Errorf("peer's retyped rows: %s", got)
	}
}
