package txshim

import (
	"testing"
)

// TestFidelityValueShapes: values and shapes TestFidelity leaves out reach the peer as they
// are on the local database, keyed and under REPLICA IDENTITY FULL.
func TestFidelityValueShapes(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE shapes (id int PRIMARY KEY, mr int4multirange, tmr tstzmultirange, arr int[], tarr text[], n numeric, vb varbit, mo money, j json, jb jsonb, f float8, r real, iv interval)`,
		`CREATE TABLE shapesfull (mr int4multirange, tmr tstzmultirange, arr int[], tarr text[], n numeric, vb varbit, mo money, j json, jb jsonb, f float8, r real, iv interval)`,
		`ALTER TABLE shapesfull REPLICA IDENTITY FULL`,
		`CREATE TYPE lvl AS ENUM ('lo')`,
		`CREATE TABLE sess (id int PRIMARY KEY, tz timestamptz, d date, iv interval, b bytea, f float8, m lvl, big text)`,
		`CREATE TABLE sessfull (tz timestamptz, d date, iv interval, b bytea, f float8, m lvl, big text)`,
		`ALTER TABLE sessfull REPLICA IDENTITY FULL`,
	)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	const row1 = `'{[1,3),[5,7)}', '{[2024-01-01 00:00+02,2024-02-01 00:00+02),[2025-01-01,infinity)}', '[2:3]={1,NULL}', '[-1:0][1:2]={{a,NULL},{"",NULL}}', 1e-1000 + 12345678901234567890.123456789012345678901234567890, B'1010101', 12.34, '{ "a" : [1,  2.50e1 ] }', '{"b": 1.0, "a": [1.50, -0]}', 2.2250738585072014e-308, 1.4e-45, '1 mon -1 day 25:00:00.000001'`
	const row2 = `'{}', '{(,)}', '[0:0]={NULL}', '{NULL}', 'Infinity', B'', -92233720368547758.08, '1', '[]', 1.7976931348623157e308, -0, '-178000000 years'`
	const row3 = `'{[1,3),[5,7)}', '{[2024-01-01 00:00+02,2024-02-01 00:00+02),[2025-01-01,infinity)}', '{1,NULL}', '{{a,NULL},{"",NULL}}', 1e-1000, B'10101010', 12.34, '{"a":[1,2.50e1]}', '{"b": 1.0, "a": [1.50, -0]}', 0.1::float8 + 0.2::float8, 'NaN', '1 day'`
	t.Run("keyed", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"shapes"},
			`INSERT INTO shapes VALUES (1, `+row1+`), (2, `+row2+`), (3, `+row3+`)`,
			`UPDATE shapes SET mr = mr + '{[10,11)}' WHERE id = 1`,
			`UPDATE shapes SET arr[5] = 9, id = 4 WHERE id = 1`,
			`UPDATE shapes SET n = -n, f = -f, r = -r WHERE id = 2`,
			`INSERT INTO shapes SELECT 100 + g, `+row1+` FROM generate_series(1, 50) g`,
		)
	})
	t.Run("full", func(t *testing.T) {
		fidelityStep(t, p, sh, conn, []string{"shapesfull"},
			`INSERT INTO shapesfull VALUES (`+row1+`), (`+row2+`), (`+row3+`), (`+row1+`)`,
			`UPDATE shapesfull SET mo = mo + 1::money WHERE vb = B'1010101'`,
			`UPDATE shapesfull SET j = '{}' WHERE n = 'Infinity'`,
			`UPDATE shapesfull SET f = 1 WHERE vb = B'10101010'`,
			`DELETE FROM shapesfull WHERE arr = '{1,NULL}'`,
			`DELETE FROM shapesfull WHERE vb = B''`,
		)
	})
	t.Run("client settings", func(t *testing.T) {
		const big = `(SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400))`
		for _, tb := range []string{"sess", "sessfull"} {
			cols, key := "", ""
			if tb == "sess" {
				cols, key = "id, ", "1, "
			}
			fidelityStep(t, p, sh, conn, []string{tb},
				`SET timezone = 'America/St_Johns'`,
				`SET datestyle = 'SQL, DMY'`,
				`SET intervalstyle = 'iso_8601'`,
				`SET bytea_output = 'escape'`,
				`SET extra_float_digits = -15`,
				`ALTER TYPE lvl ADD VALUE IF NOT EXISTS 'hi'`,
				`BEGIN; INSERT INTO `+tb+` (`+cols+`tz, d, iv, b, f, m, big) VALUES (`+key+`'2024-03-10 02:30', '01/02/2024', 'P1Y2M3DT4H5M6.5S', E'\\000\\377', 0.1::float8 + 0.2::float8, 'hi', `+big+`); COMMIT`,
				`UPDATE `+tb+` SET iv = iv + 'PT1S', tz = tz + '1 day'`,
				`UPDATE `+tb+` SET f = f * 3`,
				`RESET ALL`,
			)
		}
	})
}
