package txshim

import "testing"

// TestRetypeSafeNotRefused: text read into an enum (USING c::mood) on a table with rows was
// refused as not immutable: PostgreSQL takes an enum's input for stable only, as it reads the
// enum's labels from the catalog — the same on the peer, and no setting. A volatile conversion,
// or a stable one of another kind, still is.
func TestRetypeSafeNotRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE items (id int PRIMARY KEY, c text, d text)`,
		`INSERT INTO items VALUES (1, 'sad', 'ok'), (2, 'happy', 'sad')`)
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN c TYPE mood USING c::mood`,
		`ALTER TABLE items ALTER COLUMN d TYPE mood USING d::mood, ALTER COLUMN d SET DEFAULT 'ok'`,
		`ALTER TABLE items ADD y text`,
		`UPDATE items SET y = 'ok'`,
		`ALTER TABLE items ALTER y TYPE mood USING (y)::mood`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN id TYPE float8 USING id + random()`,
		`ALTER TABLE items ALTER COLUMN d TYPE text USING (now()::text)`,
		`ALTER TABLE items ALTER COLUMN c TYPE timestamptz USING c::text::timestamptz`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM items WHERE c::text IN ('sad', 'happy') AND y = 'ok'`); got != 2 {
		t.Errorf("peer's retyped rows: %d, want 2", got)
	}
}

// TestRetypeEnumUserCastRefused: a cast to an enum is read as a cast to text by the
// immutability probe (TestRetypeSafeNotRefused), as PostgreSQL's own is the enum's input; one a
// user made (CREATE CAST … WITH FUNCTION) calls its function instead, and a stable one that
// reads the clock passed, each database converting the rows by its own moment.
func TestRetypeEnumUserCastRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE FUNCTION to_mood(text) RETURNS mood STABLE LANGUAGE plpgsql AS $$BEGIN RETURN CASE WHEN pg_catalog.now() > '2000-01-01' THEN 'ok'::mood ELSE 'sad'::mood END; END$$`,
		`CREATE CAST (text AS mood) WITH FUNCTION to_mood(text)`,
		`CREATE TABLE items (id int PRIMARY KEY, c text)`,
		`INSERT INTO items VALUES (1, 'sad'), (2, 'happy')`)
	q := `ALTER TABLE items ALTER COLUMN c TYPE mood USING c::mood`
	if err := exec(q); pgCode(err) != "0A000" {
		t.Errorf("%s: %v, want 0A000 (the rows there would differ)", q, err)
	}
	if conn.PgConn().TxStatus() == 'E' {
		exec(`ROLLBACK`)
	}
	shipped()
}

// TestRetypeNationalCharacterNotRefused: the probe's reading of casts to enums
// (enumCastsAsText) asked to_regtype about the first word of a type written in several
// (national character varying), which PostgreSQL 15 cannot read alone: a syntax error, and an
// immutable conversion was refused as one that could not be told.
func TestRetypeNationalCharacterNotRefused(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, c text)`,
		`INSERT INTO items VALUES (1, 'sad'), (2, 'happy')`)
	q := `ALTER TABLE items ALTER COLUMN c TYPE varchar(10) USING c::national character varying(10)`
	if err := exec(q); err != nil {
		t.Errorf("%s: %v", q, err)
		if conn.PgConn().TxStatus() != 'I' {
			exec(`ROLLBACK`)
		}
	}
	shipped()
}

// TestRetypeEnumOtherCastNotRefused: an enum that is the target of a cast a user made
// (TestRetypeEnumUserCastRefused) was left as written in the probe whatever that cast's
// function, and text read into it (USING c::mood, the enum's input) on a table with rows was
// refused again as not immutable, though the only cast made into it was an immutable one from
// int (which USING c::mood of a text column does not call).
func TestRetypeEnumOtherCastNotRefused(t *testing.T) {
	t.Parallel()
	p, conn, exec, shipped := ddlPair(t,
		`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE FUNCTION int_mood(int) RETURNS mood IMMUTABLE LANGUAGE sql AS $$SELECT (ARRAY['sad', 'ok', 'happy']::mood[])[$1]$$`,
		`CREATE CAST (int AS mood) WITH FUNCTION int_mood(int)`,
		`CREATE TABLE items (id int PRIMARY KEY, c text, n int)`,
		`INSERT INTO items VALUES (1, 'sad', 3), (2, 'happy', 2)`)
	for _, q := range []string{
		`ALTER TABLE items ALTER COLUMN c TYPE mood USING c::mood`,
		`ALTER TABLE items ALTER COLUMN n TYPE mood USING n::mood`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
			if conn.PgConn().TxStatus() != 'I' {
				exec(`ROLLBACK`)
			}
		}
	}
	shipped()
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM items WHERE c::text IN ('sad', 'happy') AND n::text IN ('happy', 'ok')`); got != 2 {
		t.Errorf("peer's retyped rows: %d, want 2", got)
	}
}
