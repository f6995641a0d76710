package txshim

import "testing"

// TestConcurrentIndexRealTableBesideTempRecorded: a CREATE or DROP INDEX CONCURRENTLY that
// PostgreSQL runs on a real table, while a temporary relation of the same name is there
// (search_path putting pg_temp last, a schema-qualified or quoted name, an index named as the
// temporary table), is recorded for the peer; one on the temporary table that shadows a real
// one is not.
func TestConcurrentIndexRealTableBesideTempRecorded(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE items (id int PRIMARY KEY, v int, w int)`,
		`CREATE TABLE "Items" (id int PRIMARY KEY, v int)`)
	for _, q := range []string{
		`CREATE TEMP TABLE items (id int, v int, w int)`,
		`CREATE TEMP TABLE "Items" (id int, v int)`,
		`CREATE TEMP TABLE scratch (id int)`,
		`CREATE INDEX CONCURRENTLY scratch ON public.items (id, w)`,  // named as a temporary table
		`CREATE INDEX CONCURRENTLY tmp_v ON items (v)`,               // the temporary one
		`CREATE INDEX CONCURRENTLY real_q ON public."Items" (v)`,     // qualified and quoted
		`CREATE INDEX CONCURRENTLY real_w ON public.items (w)`,       // qualified
		`CREATE INDEX CONCURRENTLY "Items_x" ON public.items (v, w)`, // index named as a temp table
		`SET search_path = public, pg_temp`,
		`CREATE INDEX CONCURRENTLY real_v ON items (v)`,
		`CREATE INDEX CONCURRENTLY real_qv ON "Items" (id, v)`,
		`CREATE INDEX CONCURRENTLY tmp_w ON pg_temp.items (w)`,
		`DROP INDEX CONCURRENTLY real_w`,
		`DROP INDEX CONCURRENTLY IF EXISTS "Items_x"`,
		`DROP INDEX CONCURRENTLY scratch RESTRICT`, // public's, pg_temp last
		`RESET search_path`,
		`CREATE INDEX CONCURRENTLY real_w2 ON public.items (w, v)`,
		`DROP INDEX CONCURRENTLY public.real_w2`,
		`INSERT INTO items VALUES (1, 1, 1)`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range []string{
		`DROP INDEX CONCURRENTLY IF EXISTS real_v, real_q`,
		`DROP INDEX CONCURRENTLY "Items"`, // the temporary table, no index
		`DROP INDEX CONCURRENTLY scratch`, // the temporary table, pg_temp first
	} {
		if err := exec(q); err == nil {
			t.Errorf("%s: no error", q)
		}
	}
	shipped()
	const q = `SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'i' AND c.relname NOT LIKE '%pkey'`
	var local, peer string
	if err := p.ldb.QueryRow(q).Scan(&local); err != nil {
		t.Fatal(err)
	}
	if err := p.pdb.QueryRow(q).Scan(&peer); err != nil {
		t.Fatal(err)
	}
	if local != "real_q,real_qv,real_v" || peer != local {
		t.Fatalf("indexes: local %q, peer %q; want real_q,real_qv,real_v on both", local, peer)
	}
}
