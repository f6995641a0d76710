package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestReservedCursorName: a cursor DECLAREd in SQL shares the portals' names, which the shim's
// own statements use (tandem_shim_internal, closed before each): one of the client's of such a
// name must not be dropped under it by the shim's next statement.
func TestReservedCursorName(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE rcur (id int PRIMARY KEY)`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, s.dsn(pgtest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	_, err = pc.Exec(ctx, `BEGIN; DECLARE tandem_shim_internal CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g; COMMIT`).ReadAll()
	if pgCode(err) == "42501" {
		return // refused, as SQL PREPARE of such a name is
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Exec(ctx, `INSERT INTO rcur VALUES (1)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	rr, err := pc.Exec(ctx, `FETCH 1 FROM tandem_shim_internal`).ReadAll()
	if err != nil {
		t.Fatalf("the client's cursor after a write: %v", err)
	}
	if len(rr) != 1 || len(rr[0].Rows) != 1 || string(rr[0].Rows[0][0]) != "1" {
		t.Fatalf("FETCH: %v", rr)
	}
}
