package txshim

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestTempDDLGuardShapes: DDL on permanent objects keeps shipping next to DDL on temporary ones
// in every shape the DDL guard's command depth (tandem.ddl_depth) must stay right through:
// a statement that fails inside a savepoint and is rolled back to it, a function that catches
// the failure of a command it runs, several statements in one Query, the extended protocol and
// CREATE EXTENSION (whose script runs commands of its own).
func TestTempDDLGuardShapes(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	c := e.connect(t)
	if _, err := c.Exec(ctx, `CREATE FUNCTION catches() RETURNS SETOF int LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE s (a int);
  BEGIN
    CREATE TABLE s2 (a nosuchtype);
  EXCEPTION WHEN OTHERS THEN
    NULL;
  END;
  RETURN QUERY SELECT 1;
  DROP TABLE s;
END $$`); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	for _, q := range []string{
		"BEGIN",
		"SAVEPOINT a",
		"!CREATE TABLE bad AS SELECT 1 / x AS y FROM generate_series(0, 1) x",
		"ROLLBACK TO a",
		"CREATE TEMP TABLE tt (a int)",
		"CREATE TABLE good1 (id int PRIMARY KEY)",
		"SAVEPOINT b",
		"CREATE TEMP TABLE tt2 (a int)",
		"!ALTER TABLE tt2 ADD COLUMN b nosuchtype",
		"ROLLBACK TO b",
		"ALTER TABLE tt ADD COLUMN b int",
		"CREATE TABLE good2 (id int PRIMARY KEY)",
		"DROP TABLE tt",
		"CREATE TABLE good3 AS SELECT x AS id FROM catches() x",
		"COMMIT",
		"CREATE TEMP TABLE m1 (a int); CREATE TABLE good4 (id int PRIMARY KEY); ALTER TABLE m1 ADD b int; CREATE INDEX good4_id ON good4 (id); DROP TABLE m1",
		"BEGIN; CREATE TEMP TABLE m2 (a int); SAVEPOINT c; CREATE INDEX ON m2 (a); ROLLBACK TO c; CREATE TABLE good5 (id int PRIMARY KEY); COMMIT",
		"=CREATE TEMP TABLE x1 (a int)",
		"=CREATE TABLE good6 (id int PRIMARY KEY)",
		"=DROP TABLE x1",
		"CREATE EXTENSION hstore",
		"CREATE TEMP TABLE h (a hstore)",
		"CREATE TABLE good7 (id int PRIMARY KEY, h hstore)",
	} {
		fail := strings.HasPrefix(q, "!")
		var err error
		switch {
		case fail:
			_, err = c.Exec(ctx, q[1:])
		case strings.HasPrefix(q, "="):
			_, err = c.Exec(ctx, q[1:], pgx.QueryExecModeDescribeExec)
		default:
			_, err = c.Exec(ctx, q)
		}
		if (err != nil) != fail {
			t.Fatalf("%s: %v", q, err)
		}
	}
	e.settle(t, before)
	for _, tb := range []string{"good1", "good2", "good3", "good4", "good5", "good6", "good7"} {
		if got := e.peerString(t, "SELECT coalesce(to_regclass($1)::text, 'missing')", tb); got != tb {
			t.Errorf("%s on the peer: %q", tb, got)
		}
	}
}
