package txshim

import (
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestOwnSessionsNoJIT: Tandem's own sessions — the control connections (OpenDB) and the
// apply's — run without JIT whatever the database's default, as JIT compiling cost the apply's
// catalog read of a table a second inside a commit's time.
func TestOwnSessionsNoJIT(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET jit = on`)
	c.Exec(t, `ALTER DATABASE `+sqlIdent(c.Database())+` SET jit_above_cost = 0`)
	ctx := capCtx(t, 30*time.Second)
	var plain string
	if err := c.Open(t, c.Database()).QueryRowContext(ctx, `SHOW jit`).Scan(&plain); err != nil || plain != "on" {
		t.Fatalf("a plain session's jit = %q, %v: want the database's default, on", plain, err)
	}
	db, err := OpenDB(c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ctl string
	if err := db.QueryRowContext(ctx, `SHOW jit`).Scan(&ctl); err != nil || ctl != "off" {
		t.Errorf("a control connection's jit = %q, %v: want off", ctl, err)
	}
	a, err := dialApply(ctx, c.DSN(c.Database()), "a", "", applyAppName, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer a.close(ctx)
	res, err := a.conn.Exec(ctx, `SHOW jit`).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "off" {
		t.Errorf("an apply session's jit: %v, %v: want off", res, err)
	}
}
