package txshim

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestFidelityDefaultTablespace: default_tablespace decides where CREATE TABLE and CREATE INDEX
// without a TABLESPACE clause put what they make. Sent through the shim from a session that set
// it, the statement put the table in the apply session's default tablespace on the peer: after
// a failover its tables and indexes were not on the storage chosen for them (verify does not
// compare tablespaces).
func TestFidelityDefaultTablespace(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{})
	tablespace := func(c *pgtest.Cluster, name string) {
		// A directory of the cluster's own OS user, beside its data directory.
		dir := filepath.Join(c.Dir(), name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(c.Dir()); err == nil {
			if s, ok := st.Sys().(*syscall.Stat_t); ok {
				os.Chown(dir, int(s.Uid), int(s.Gid))
			}
		}
		c.Exec(t, fmt.Sprintf(`CREATE TABLESPACE %s LOCATION '%s'`, name, dir))
	}
	tablespace(p.local, "fast")
	tablespace(p.peer, "fast")
	tablespace(p.local, "local_only")
	catchUpToDual(t, sh, shim)
	conn := shim.connect(t)
	fidelityStep(t, p, sh, conn, []string{"placed"},
		`SET default_tablespace = fast`,
		`CREATE TABLE placed (id int PRIMARY KEY, v text)`,
		`CREATE INDEX placed_v ON placed (v)`,
		`RESET default_tablespace`,
		`INSERT INTO placed VALUES (1, 'a')`,
	)
	const q = `SELECT string_agg(c.relname || ':' || coalesce(s.spcname, '-'), ' ' ORDER BY c.relname) FROM pg_class c LEFT JOIN pg_tablespace s ON s.oid = c.reltablespace WHERE c.relname LIKE 'placed%'`
	if l, r := queryOne[string](t, p.ldb, q), queryOne[string](t, p.pdb, q); l != r {
		t.Errorf("tablespaces: local %s, peer %s", l, r)
	}
	// One the peer lacks: the statement runs there all the same, in its default tablespace.
	fidelityStep(t, p, sh, conn, []string{"alone"},
		`SET default_tablespace = local_only`,
		`CREATE TABLE alone (id int PRIMARY KEY)`,
		`RESET default_tablespace`,
		`INSERT INTO alone VALUES (1)`,
	)
}
