package txshim

import "testing"

// TestApplyShadowedPathFunction: a peer whose search_path names pg_catalog after another schema
// (ALTER DATABASE … SET search_path = public, pg_catalog, as on the local database) and a function
// of that schema that shadows one of pg_catalog's: the apply computes what the local database
// computed — a stored generated column by a function whose body names the shadowed one
// unqualified — under the path the local session had. Starting the apply session with
// pg_catalog first (for the reg* values the walsender writes unqualified, a change since
// reverted) found pg_catalog's function instead, and the peer silently held another value.
func TestApplyShadowedPathFunction(t *testing.T) {
	t.Parallel()
	p, s := startApplyPair(t,
		`CREATE FUNCTION public.upper(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT pg_catalog.lower($1)'`,
		`CREATE FUNCTION norm(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $f$ BEGIN RETURN upper(v); END $f$`,
		`CREATE TABLE gn (id int PRIMARY KEY, v text, n text GENERATED ALWAYS AS (norm(v)) STORED)`,
		`ALTER DATABASE app SET search_path = public, pg_catalog`)
	dualCommit(t, p, s, gidFor("a", 1, 1),
		`SET LOCAL search_path = public, pg_catalog`,
		`INSERT INTO gn (id, v) VALUES (1, 'Ab')`,
		`INSERT INTO gn (id, v) SELECT g, 'Ab' FROM generate_series(2, 101) g`,
		`INSERT INTO gn (id, v) SELECT g, 'Ab' FROM generate_series(102, 201) g`)
	local := queryOne[string](t, p.ldb, `SELECT n FROM gn WHERE id = 1`)
	peer := queryOne[string](t, p.pdb, `SELECT n FROM gn WHERE id = 1`)
	if local != peer {
		t.Errorf("gn.n is %q on the local database but %q on the peer", local, peer)
	}
	if n := queryOne[int](t, p.pdb, `SELECT count(*) FROM gn WHERE n <> 'ab'`); n != 0 {
		t.Errorf("%d of the peer's gn.n are not 'ab'", n)
	}
	requireSame(t, p)
	if err := s.Err(); err != nil {
		t.Errorf("shipper: %v", err)
	}
}
