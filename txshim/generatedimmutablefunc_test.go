package txshim

import "testing"

// TestGeneratedImmutableFunctionTextRefused: a stored generated column is computed by each
// database under its own session's settings (generatedcheck.go); one that calls a function of
// the application's declared IMMUTABLE whose body converts a timestamptz to text ($1::text,
// by DateStyle and TimeZone) passed, PostgreSQL taking the declaration at its word.
func TestGeneratedImmutableFunctionTextRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE FUNCTION stamp(timestamptz) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT $1::text'`,
		`CREATE FUNCTION stamp2(timestamptz) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$BEGIN RETURN $1::text; END$$`,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz)`)
	for _, q := range []string{
		`ALTER TABLE items ADD s text GENERATED ALWAYS AS (stamp(at)) STORED`,
		`ALTER TABLE items ADD s text GENERATED ALWAYS AS (stamp2(at)) STORED`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the peer could store other text)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	// A function of the application's with no such argument still passes.
	for _, q := range []string{
		`CREATE FUNCTION shout(text) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT upper($1)'`,
		`ALTER TABLE items ADD note text, ADD loud text GENERATED ALWAYS AS (shout(note)) STORED`,
		`SET DateStyle = 'SQL, DMY'`,
		`INSERT INTO items VALUES (1, '2020-01-02 03:04:05+00', 'hi')`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
