package txshim

import "testing"

// TestRetypeEnumOtherSourceCastNotRefused: a retype into an enum without USING was judged by
// the immutability probe whenever a cast whose function is not immutable targets the enum,
// from whichever type: a user's stable cast from int into the enum refused the retype of a text
// column, which converts by the enum's input (the user's WITH INOUT assignment cast, the same
// on the peer) and not by that cast; it passed before e53ad62.
func TestRetypeEnumOtherSourceCastNotRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE FUNCTION int_mood(int) RETURNS mood STABLE LANGUAGE plpgsql AS $$BEGIN RETURN CASE WHEN pg_catalog.now() > '2000-01-01' THEN 'ok'::mood ELSE 'sad'::mood END; END$$`,
		`CREATE CAST (int AS mood) WITH FUNCTION int_mood(int) AS ASSIGNMENT`,
		`CREATE CAST (text AS mood) WITH INOUT AS ASSIGNMENT`,
		`CREATE TABLE items (id int PRIMARY KEY, c text, n int)`,
		`INSERT INTO items VALUES (1, 'sad', 1), (2, 'happy', 2)`)
	// The int column converts by the user's stable cast: still refused.
	if q := `ALTER TABLE items ALTER COLUMN n TYPE mood`; pgCode(exec(q)) != "0A000" {
		t.Errorf("%s: want 0A000 (the rows there would differ)", q)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	if q, err := `ALTER TABLE items ALTER COLUMN c TYPE mood`, exec(`ALTER TABLE items ALTER COLUMN c TYPE mood`); err != nil {
		t.Errorf("%s refused: %v", q, err)
	}
	shipped()
	if got := queryOne[string](t, p.pdb, `SELECT string_agg(c::text, ',' ORDER BY id) FROM items`); got != "sad,happy" {
		t.Errorf("peer's retyped rows: %s", got)
	}
}
