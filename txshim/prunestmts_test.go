package txshim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPruneStmtsDeferrableDefaults: the query by which the shim learns which closed statements
// PostgreSQL still holds (pruneStmts) ran in an implicit transaction of the session's default
// characteristics: under SERIALIZABLE, READ ONLY and DEFERRABLE defaults it waited for a safe
// snapshot — for every serializable read-write transaction open to end — and so did the
// client's request behind it, one PostgreSQL answers at once (a Close takes no snapshot).
func TestPruneStmtsDeferrableDefaults(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE pdef (id int PRIMARY KEY)`)
	r := dialRaw(t, s)
	r.simple("SET default_transaction_isolation = serializable; SET default_transaction_read_only = on; SET default_transaction_deferrable = on")
	if got, _ := r.ready(); !strings.HasPrefix(got, "CCC") {
		t.Fatalf("SET defaults: %q", got)
	}
	// A statement whose Close an error before it may have skipped: marked closing.
	r.fe.SendParse(&pgproto3.Parse{Name: "w", Query: "SELECT 2"})
	if got, _ := r.sync(); got != "1Z" {
		t.Fatalf("Parse w: %q", got)
	}
	r.stmt("SELECT 1/0")
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: "w"})
	if got, _ := r.sync(); got != "1E(22012)Z" {
		t.Fatalf("error, then Close w: %q", got)
	}
	// Enough statements for the next request to run pruneStmts.
	for i := 0; i < 70; i++ {
		r.fe.SendParse(&pgproto3.Parse{Name: fmt.Sprintf("s%d", i), Query: "SHOW work_mem"})
	}
	if got, _ := r.sync(); got != "1111111111111111111111111111111111111111111111111111111111111111111111Z" {
		t.Fatalf("Parses: %q", got)
	}
	// Another session's serializable read-write transaction, open.
	tx, err := c.Open(t, c.Database()).BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, `SELECT count(*) FROM pdef`, `INSERT INTO pdef VALUES (0)`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	r.conn.SetDeadline(time.Now().Add(5 * time.Second))
	r.fe.SendClose(&pgproto3.Close{ObjectType: 'S', Name: "s0"})
	r.fe.SendSync(&pgproto3.Sync{})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := r.until('Z')
	if err != nil {
		t.Fatalf("Close s0 while another session holds a serializable read-write transaction open: %q, %v", got, err)
	}
	if got != "3Z" {
		t.Fatalf("Close s0: %q", got)
	}
	r.conn.SetDeadline(time.Time{})
}
