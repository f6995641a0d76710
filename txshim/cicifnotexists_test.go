package txshim

import "testing"

// TestConcurrentIndexIfNotExistsNoOp: CREATE INDEX CONCURRENTLY IF NOT EXISTS of an index
// that is there does nothing, yet the shim judged it (a clock word in it refused it) and
// recorded it for the peer.
func TestConcurrentIndexIfNotExistsNoOp(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, at timestamptz)`,
		`CREATE INDEX items_at ON items (at) WHERE at > '2020-01-01'`)
	for _, q := range []string{
		`CREATE INDEX CONCURRENTLY IF NOT EXISTS items_at ON items (at) WHERE at > 'now'`,
		`CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "items_at" ON public.items (id, at)`,
		`INSERT INTO items VALUES (1, '2021-01-01')`,
	} {
		if err := exec(q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM tandem.ddl WHERE stmt LIKE '%IF NOT EXISTS%'`); n != 0 {
		t.Errorf("%d no-op CREATE INDEX recorded for the peer, want 0", n)
	}
	shipped()
}
