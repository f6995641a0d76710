package txshim

import (
	"fmt"
	"testing"
)

// TestSearchPathShadowsRecord: a client whose search_path puts a schema before pg_catalog that
// has a type named record. The DO block the shim runs after DDL that adds a column with a
// default (or may leave a table without a key) declared its loop variable as record, which
// PL/pgSQL looks up along the client's search_path: it took the client's type, and the DDL
// PostgreSQL runs failed through the shim (record "r" has no field …). Each statement runs on
// PostgreSQL itself and through the shim, with the same replies.
func TestSearchPathShadowsRecord(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE SCHEMA app; CREATE TYPE app.record AS (a int);
CREATE TABLE t0 (id int PRIMARY KEY); INSERT INTO t0 VALUES (1);
CREATE TABLE t1 (id int PRIMARY KEY); INSERT INTO t1 VALUES (1)`)
	var want string
	for i, r := range []*rawSession{dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)} {
		r.t = t
		got := r.runSteps([]xstep{xq(`SET search_path = app, pg_catalog, public`),
			xq(fmt.Sprintf(`ALTER TABLE t%d ADD COLUMN c int DEFAULT 1`, i)),
			xq(fmt.Sprintf(`ALTER TABLE t%d DROP CONSTRAINT t%d_pkey`, i, i))})
		if i == 0 {
			want = got
		} else if got != want {
			t.Errorf("shim: %s\nPostgreSQL: %s", got, want)
		}
		r.conn.Close()
	}
}
