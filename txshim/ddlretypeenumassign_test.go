package txshim

import "testing"

// TestRetypeEnumStableAssignmentCastRefused: a retype without USING converts by the assignment
// cast, and only a volatile one was refused; a user's stable cast into an enum (CREATE CAST …
// WITH FUNCTION … AS ASSIGNMENT) that reads the clock passed, each database converting the
// rows by its own moment, where the same cast written in USING is refused
// (TestRetypeEnumUserCastRefused).
func TestRetypeEnumStableAssignmentCastRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE FUNCTION to_mood(text) RETURNS mood STABLE LANGUAGE plpgsql AS $$BEGIN RETURN CASE WHEN pg_catalog.now() > '2000-01-01' THEN 'ok'::mood ELSE 'sad'::mood END; END$$`,
		`CREATE CAST (text AS mood) WITH FUNCTION to_mood(text) AS ASSIGNMENT`,
		`CREATE TABLE items (id int PRIMARY KEY, c text, d timestamp)`,
		`INSERT INTO items VALUES (1, 'sad', '2020-01-01'), (2, 'happy', '2020-01-02')`)
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN c TYPE mood`,
		`ALTER TABLE items ALTER COLUMN c TYPE mood[] USING ARRAY[c]`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	// A built-in stable assignment cast runs under the settings recorded with the statement.
	if q := `ALTER TABLE items ALTER COLUMN d TYPE timestamptz`; exec(q) != nil {
		t.Errorf("%s refused", q)
	}
	shipped()
}
