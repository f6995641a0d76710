package txshim

import (
	"strings"
	"testing"
)

// TestRetypeNoUsingMessage: a retype without USING whose conversion, the assignment cast, the
// immutability probe refuses (a user's stable cast into an enum) was reported as "USING
// CAST((c) AS mood) would give them values …", naming a USING clause the statement does not
// have; the message names the conversion instead.
func TestRetypeNoUsingMessage(t *testing.T) {
	t.Parallel()
	_, conn, exec, _ := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE FUNCTION to_mood(text) RETURNS mood STABLE LANGUAGE plpgsql AS $$BEGIN RETURN CASE WHEN pg_catalog.now() > '2000-01-01' THEN 'ok'::mood ELSE 'sad'::mood END; END$$`,
		`CREATE CAST (text AS mood) WITH FUNCTION to_mood(text) AS ASSIGNMENT`,
		`CREATE TABLE items (id int PRIMARY KEY, c text)`,
		`INSERT INTO items VALUES (1, 'sad'), (2, 'happy')`)
	err := exec(`ALTER TABLE items ALTER COLUMN c TYPE mood`)
	if pgCode(err) != "0A000" {
		t.Fatalf("retype: %v, want 0A000", err)
	}
	if msg := err.Error(); strings.Contains(msg, "USING") || !strings.Contains(msg, "not immutable") {
		t.Errorf("message %q: want the conversion named, no USING, and why", msg)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	// A USING expression is still named as one.
	err = exec(`ALTER TABLE items ALTER COLUMN c TYPE mood USING to_mood(c)`)
	if pgCode(err) != "0A000" || !strings.Contains(err.Error(), "USING to_mood(c)") {
		t.Errorf("retype USING: %v, want 0A000 naming USING to_mood(c)", err)
	}
}
