package txshim

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestKeptDeallocatedAfterCommit: a request whose COMMIT comes before a DEALLOCATE ALL. The
// session forgot its kept statements (the commit check) when it read the DEALLOCATE ALL, before
// the request ran; the COMMIT, run by the shim, then parsed its check again, and the DEALLOCATE
// ALL ended it on the backend: the next commit's check failed (26000), rolling back the client's
// write with "commit check failed".
func TestKeptDeallocatedAfterCommit(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	ctx := context.Background()
	admin := e.connect(t)
	execAll(t, admin, "CREATE TABLE rows (id int PRIMARY KEY)")
	before := e.shim.Stats()
	// Each on a session of its own: after the first failure a session parses its checks each
	// time (keepOff).
	for i, q := range []string{
		"INSERT INTO rows VALUES (1); COMMIT; DEALLOCATE ALL",
		"BEGIN; INSERT INTO rows VALUES (3); COMMIT; DEALLOCATE ALL",
	} {
		c := e.connect(t)
		for _, q := range []string{q, fmt.Sprintf("INSERT INTO rows VALUES (%d)", 2*i+2)} {
			if _, err := c.Exec(ctx, q, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}
	// The extended protocol: the COMMIT and the DEALLOCATE ALL in one request.
	c := e.connect(t)
	b := &pgconn.Batch{}
	for _, q := range []string{"BEGIN", "INSERT INTO rows VALUES (5)", "COMMIT", "DEALLOCATE ALL"} {
		b.ExecParams(q, nil, nil, nil, nil)
	}
	if _, err := c.PgConn().ExecBatch(ctx, b).ReadAll(); err != nil {
		t.Errorf("extended request: %v", err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO rows VALUES (6)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Errorf("after the extended request: %v", err)
	}
	e.settle(t, before)
	if got := queryOne[string](t, e.localDB, "SELECT string_agg(id::text, ',' ORDER BY id) FROM rows"); got != "1,2,3,4,5,6" {
		t.Errorf("rows: %q, want 1,2,3,4,5,6", got)
	}
}
