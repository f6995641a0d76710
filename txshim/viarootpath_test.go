package txshim

import (
	"testing"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestAfterDDLSearchPathShadowing: the DO block that runs after DDL, in the client's session,
// compared replica identities with CASE relreplident WHEN 'd', whose = PostgreSQL looks up
// along the client's search_path: a client that puts its own schema before pg_catalog, with
// an = of its own for "char" there, had CREATE TABLE … PARTITION OF a keyed root refused
// (its root's key read as none) while the publication publishes through partition roots, and
// a keyless table it made left without REPLICA IDENTITY FULL, so its UPDATE refused.
func TestAfterDDLSearchPathShadowing(t *testing.T) {
	t.Parallel()
	p, _, exec, shipped := ddlPair(t,
		`CREATE TABLE pk (k int NOT NULL, p int, v text, PRIMARY KEY (k, p)) PARTITION BY LIST (p)`,
		`CREATE TABLE pk1 PARTITION OF pk FOR VALUES IN (1)`,
		`CREATE FUNCTION public.never("char", "char") RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false'`,
		`CREATE OPERATOR public.= (LEFTARG = "char", RIGHTARG = "char", FUNCTION = public.never)`)
	for _, c := range []*pgtest.Cluster{p.local, p.peer} {
		c.Exec(t, `ALTER PUBLICATION tandem SET (publish_via_partition_root = true)`)
	}
	for _, q := range []string{
		`SET search_path = public, pg_catalog`,
		`CREATE TABLE pk2 PARTITION OF pk FOR VALUES IN (2)`,
		`CREATE TABLE nokey (a int, b text)`,
		`INSERT INTO pk VALUES (1, 1, 'a'), (2, 2, 'b')`,
		`INSERT INTO nokey VALUES (1, 'a')`,
		`UPDATE pk SET v = 'x'`,
		`UPDATE nokey SET b = 'x'`,
	} {
		if err := exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	shipped()
}
