package txshim

import "testing"

// TestFidelityIntervalMinTime: an interval whose time part is the least PostgreSQL holds
// (-2562047788:00:54.775808) reaches the peer, keyed and under REPLICA IDENTITY FULL. Its
// postgres-style text, which PostgreSQL 15 writes but cannot read back ("invalid input syntax
// for type interval"), made the peer refuse the transaction on every try.
func TestFidelityIntervalMinTime(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{},
		`CREATE TABLE ivk (id int PRIMARY KEY, iv interval)`,
		`CREATE TABLE ivf (iv interval, n int)`, `ALTER TABLE ivf REPLICA IDENTITY FULL`)
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	const least = `(interval '-2562047788:00:54.775807' - interval '0.000001 s')`
	fidelityStep(t, p, sh, conn, []string{"ivk", "ivf"},
		`INSERT INTO ivk VALUES (1, `+least+`), (2, `+least+` - interval '2147483647 days' - interval '1 day'), (3, '1 mon -1 day 25:00:00.000001')`,
		`INSERT INTO ivf VALUES (`+least+`, 0), (interval '178956970 years 7 mons 2147483647 days 2562047788:00:54.775807', 0)`,
		`UPDATE ivf SET n = 1`,
		`DELETE FROM ivf WHERE n = 1 AND iv < '0'`,
	)
}
