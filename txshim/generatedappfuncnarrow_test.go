package txshim

import "testing"

// TestGeneratedAppFunctionNoTextPasses: the generated-column check refused every stored
// generated column calling a function of the application's with an argument of a type whose
// text depends on settings (float8, timestamptz, …), whatever its body: an IMMUTABLE
// round($1) on a float8 was refused, with no way around it. Only a function whose body could
// turn the argument into text or read a setting (a cast to text, to_char, ||, a text
// variable, another function of the application's, a language whose body is not read) is.
func TestGeneratedAppFunctionNoTextPasses(t *testing.T) {
	t.Parallel()
	_, conn, exec, shipped := ddlPair(t,
		`CREATE FUNCTION r2(float8) RETURNS float8 IMMUTABLE LANGUAGE sql AS 'SELECT round($1::numeric, 2)::float8'`,
		`CREATE FUNCTION half(float8) RETURNS float8 IMMUTABLE LANGUAGE plpgsql AS $$BEGIN RETURN $1 / 2; END$$`,
		`CREATE FUNCTION r3(float8) RETURNS float8 IMMUTABLE LANGUAGE sql RETURN round($1)`,
		`CREATE FUNCTION nextday(date) RETURNS date IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 1'`,
		`CREATE FUNCTION year_of(date) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT extract(year FROM $1)::int'`,
		`CREATE FUNCTION t1(float8) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT to_char($1, ''999D9'')'`,
		`CREATE FUNCTION t2(float8) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT ''v='' || $1'`,
		`CREATE FUNCTION t3(float8) RETURNS text IMMUTABLE LANGUAGE sql AS 'SELECT $1'`,
		`CREATE FUNCTION t4(float8) RETURNS float8 IMMUTABLE LANGUAGE plpgsql AS $$DECLARE s text; BEGIN s := $1; RETURN length(s); END$$`,
		`CREATE FUNCTION t5(float8) RETURNS float8 IMMUTABLE LANGUAGE sql AS 'SELECT length(CAST($1 AS varchar))'`,
		`CREATE FUNCTION t6(float8) RETURNS text IMMUTABLE LANGUAGE sql RETURN format('%s', $1)`,
		`CREATE FUNCTION t7(timestamptz) RETURNS float8 IMMUTABLE LANGUAGE sql AS 'SELECT extract(hour FROM $1)'`,
		`CREATE FUNCTION t8(float8) RETURNS float8 IMMUTABLE LANGUAGE sql AS 'SELECT length(t3($1))'`,
		`CREATE TABLE items (id int PRIMARY KEY, f float8, d date, at timestamptz)`)
	for _, q := range []string{
		`ALTER TABLE items ADD t1 text GENERATED ALWAYS AS (t1(f)) STORED`,
		`ALTER TABLE items ADD t2 text GENERATED ALWAYS AS (t2(f)) STORED`,
		`ALTER TABLE items ADD t3 text GENERATED ALWAYS AS (t3(f)) STORED`,
		`ALTER TABLE items ADD t4 float8 GENERATED ALWAYS AS (t4(f)) STORED`,
		`ALTER TABLE items ADD t5 float8 GENERATED ALWAYS AS (t5(f)) STORED`,
		`ALTER TABLE items ADD t6 text GENERATED ALWAYS AS (t6(f)) STORED`,
		`ALTER TABLE items ADD t7 float8 GENERATED ALWAYS AS (t7(at)) STORED`,
		`ALTER TABLE items ADD t8 float8 GENERATED ALWAYS AS (t8(f)) STORED`,
	} {
		if err := exec(q); pgCode(err) != "0A000" {
			t.Errorf("%s: %v, want 0A000 (the peer could store another value)", q, err)
		}
		if conn.PgConn().TxStatus() == 'E' {
			exec(`ROLLBACK`)
		}
	}
	for _, q := range []string{
		`ALTER TABLE items ADD r2 float8 GENERATED ALWAYS AS (r2(f)) STORED`,
		`ALTER TABLE items ADD half float8 GENERATED ALWAYS AS (half(f)) STORED`,
		`ALTER TABLE items ADD r3 float8 GENERATED ALWAYS AS (r3(f)) STORED`,
		`ALTER TABLE items ADD nd date GENERATED ALWAYS AS (nextday(d)) STORED`,
		`ALTER TABLE items ADD y int GENERATED ALWAYS AS (year_of(d)) STORED`,
		`SET extra_float_digits = 0`,
		`SET DateStyle = 'SQL, DMY'`,
		`INSERT INTO items VALUES (1, 1.23456789012345678, '2020-01-02', '2020-01-02 03:04:05+00')`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	shipped()
}
