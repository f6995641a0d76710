package txshim

import "testing"

// TestApplyRegReadShadowedPath: the walsender writes a reg* value naming an object of
// pg_catalog unqualified (search_path pg_catalog), and the apply session read it after the
// peer's search_path, which here puts a schema with a function of the same name before
// pg_catalog: the peer held that function (an insert, a COPY of a long run of them) and found
// no row by such a key.
func TestApplyRegReadShadowedPath(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE FUNCTION public.pg_backend_pid() RETURNS int LANGUAGE sql AS 'SELECT 0'`,
		`CREATE TABLE rp (id int PRIMARY KEY, f regproc)`,
		`CREATE TABLE rk (f regproc PRIMARY KEY, v int)`,
		`INSERT INTO rk VALUES ('pg_catalog.pg_backend_pid', 0)`,
		`ALTER DATABASE app SET search_path = public, pg_catalog`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`INSERT INTO rp VALUES (0, 'pg_catalog.pg_backend_pid'::regproc)`,
		`INSERT INTO rp SELECT g, 'pg_catalog.pg_backend_pid'::regproc FROM generate_series(1, 100) g`,
		`UPDATE rk SET v = 1`)
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM rp WHERE f <> 'pg_catalog.pg_backend_pid'::regproc`); n != 0 {
		t.Errorf("%d of the peer's rp.f are not pg_catalog.pg_backend_pid", n)
	}
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
