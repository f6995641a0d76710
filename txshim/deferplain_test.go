package txshim

import (
	"context"
	"testing"
	"time"
)

// TestDeferrableDefaultsPlainCommit: a session whose defaults are SERIALIZABLE, READ ONLY and
// DEFERRABLE commits a write that cannot be prepared (a WITH HOLD cursor) in dual mode: the
// shim commits it plainly and marks the stream after it, to wait until the peer has it. The
// mark, a query in an implicit transaction of those defaults, waited for a safe snapshot as
// long as another session held a serializable read-write transaction open: the COMMIT hung,
// where PostgreSQL answers it at once.
func TestDeferrableDefaultsPlainCommit(t *testing.T) {
	t.Parallel()
	d := startDualAcct(t, Options{}, 5)
	tx, err := d.p.ldb.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{`SET TRANSACTION ISOLATION LEVEL SERIALIZABLE`, `SELECT count(*) FROM acct`, `UPDATE acct SET balance = 0 WHERE id = 5`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	r := dialRaw(t, d.shim)
	start := time.Now()
	got := r.runSteps([]xstep{xq("SET default_transaction_isolation = serializable; SET default_transaction_read_only = on; SET default_transaction_deferrable = on"),
		xq("BEGIN READ WRITE; DECLARE c CURSOR WITH HOLD FOR SELECT 1; UPDATE acct SET balance = 7 WHERE id = 2; COMMIT"), xq("SHOW transaction_isolation")})
	const want = "C(SET) C(SET) C(SET) S Z(I)\nC(BEGIN) C(DECLARE CURSOR) C(UPDATE 1) C(COMMIT) Z(I)\nT D[\"serializable\"] C(SHOW) Z(I)"
	if d := time.Since(start); got != want || d > 3*time.Second {
		t.Errorf("after %v:\n%s\nwant\n%s", d, got, want)
	}
	if st := d.shim.Stats(); st.Unwrapped != 1 {
		t.Errorf("stats %+v, want one plain commit", st)
	}
	if got := queryOne[int](t, d.p.pdb, "SELECT balance FROM acct WHERE id = 2"); got != 7 {
		t.Errorf("the peer's balance %d, want 7", got)
	}
}
