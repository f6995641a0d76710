package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDriversDual: client behaviours through the shim in dual mode with the real Shipper.
func TestDriversDual(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("two clusters")
	}
	e := startAccEnv(t)
	ctx := capCtx(t, 60*time.Second)
	listener, notifier := e.connect(t), e.connect(t)
	if _, err := notifier.Exec(ctx, "CREATE TABLE drv_n (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := listener.Exec(ctx, "LISTEN drv_ch"); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	expectNone := func(what string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if n, err := listener.WaitForNotification(wctx); err == nil {
			t.Errorf("%s: unexpected notification %+v", what, n)
		}
	}
	expectOne := func(what, payload string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		n, err := listener.WaitForNotification(wctx)
		if err != nil || n.Payload != payload {
			t.Errorf("%s: notification %+v, %v; want payload %q", what, n, err, payload)
		}
		expectNone(what + " (a second time)")
	}
	// An explicit transaction: nothing before COMMIT, one after.
	tx, err := notifier.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO drv_n VALUES ($1, 'tx')", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify('drv_ch', $1)", "one"); err != nil {
		t.Fatal(err)
	}
	expectNone("before commit")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	expectOne("after commit", "one")
	// NOTIFY in a batch with a write (one implicit transaction).
	b := &pgx.Batch{}
	b.Queue("INSERT INTO drv_n VALUES ($1, 'batch')", 2)
	b.Queue("NOTIFY drv_ch, 'two'")
	if err := notifier.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	expectOne("batch", "two")
	// A rolled back transaction notifies nobody.
	tx, err = notifier.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(ctx, "INSERT INTO drv_n VALUES ($1, 'rolled back')", 3)
	tx.Exec(ctx, "NOTIFY drv_ch, 'three'")
	tx.Rollback(ctx)
	expectNone("rollback")
	// A failing batch neither.
	b = &pgx.Batch{}
	b.Queue("INSERT INTO drv_n VALUES ($1, 'batch')", 4)
	b.Queue("NOTIFY drv_ch, 'four'")
	b.Queue("INSERT INTO drv_n VALUES ($1, 'dup')", 1)
	if err := notifier.SendBatch(ctx, b).Close(); pgCode(err) != "23505" {
		t.Fatalf("failing batch: %v", err)
	}
	expectNone("failed batch")
	// The listener sends NOTIFY to itself inside a write transaction.
	if _, err := listener.Exec(ctx, "BEGIN; INSERT INTO drv_n VALUES (5, 'self'); NOTIFY drv_ch, 'five'; COMMIT"); err != nil {
		t.Fatal(err)
	}
	expectOne("self", "five")
	// A WITH HOLD cursor declared in a write transaction (which cannot be prepared), fetched
	// across later write transactions.
	tx, err = notifier.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO drv_n VALUES ($1, 'hold')", 6); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "DECLARE hc CURSOR WITH HOLD FOR SELECT id FROM drv_n ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var fetched []int32
	for i := 0; i < 3; i++ {
		tx, err := notifier.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var id int32
		if err := tx.QueryRow(ctx, "FETCH 1 FROM hc").Scan(&id); err != nil {
			t.Fatal(err)
		}
		fetched = append(fetched, id)
		if _, err := tx.Exec(ctx, "UPDATE drv_n SET v = v || '+' WHERE id = $1", id); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(fetched) != "[1 2 5]" {
		t.Errorf("fetched %v", fetched)
	}
	if _, err := notifier.Exec(ctx, "CLOSE hc"); err != nil {
		t.Fatal(err)
	}
	// Write skew between two SERIALIZABLE transactions: the second commit fails with 40001
	// and nothing of it stays prepared anywhere.
	other := e.connect(t)
	t1, err := notifier.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		t.Fatal(err)
	}
	t2, err := other.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		t.Fatal(err)
	}
	for _, tx := range []pgx.Tx{t1, t2} {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM drv_n").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := t1.Exec(ctx, "INSERT INTO drv_n VALUES ($1, 'skew')", 7); err != nil {
		t.Fatal(err)
	}
	if _, err := t2.Exec(ctx, "INSERT INTO drv_n VALUES ($1, 'skew')", 8); err != nil {
		t.Fatal(err)
	}
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := t2.Commit(ctx); pgCode(err) != "40001" {
		t.Errorf("second serializable commit: %v, want 40001", err)
	}
	e.settle(t, before)
	if got := e.peerString(t, "SELECT string_agg(id || v, ',' ORDER BY id) FROM drv_n"); got != "1tx+,2batch+,5self+,6hold,7skew" {
		t.Errorf("peer rows %s", got)
	}
	if got := e.peerString(t, "SELECT string_agg(id::text, ',' ORDER BY id) FROM drv_n"); got != "1,2,5,6,7" {
		t.Errorf("peer rows %s, want 1,2,5", got)
	}
	t.Logf("stats %+v", e.shim.Stats())
}
