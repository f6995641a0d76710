package txshim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestOpenDBFrozenServer: a database that stops answering (paused) fails each control operation
// at its context's deadline or cancellation — on a connection opened before the pause and on a
// new one — and the handle works again once the database answers.
func TestOpenDBFrozenServer(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	db, err := OpenDB(c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(3)
	one := func(ctx context.Context) error {
		var n int
		return db.QueryRowContext(ctx, `SELECT 1`).Scan(&n)
	}
	if err := one(context.Background()); err != nil {
		t.Fatal(err)
	}
	stmt, err := db.PrepareContext(context.Background(), `SELECT $1::int`)
	if err != nil {
		t.Fatal(err)
	}
	defer stmt.Close()
	if err := c.Pause(); err != nil {
		t.Fatal(err)
	}
	defer c.Resume()

	// A prepared statement's operation, on the connection it was prepared on.
	sctx, scancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	start := time.Now()
	var got int
	err = stmt.QueryRowContext(sctx, 7).Scan(&got)
	scancel()
	if d := time.Since(start); err == nil || d > 3*time.Second {
		t.Errorf("prepared statement on a frozen server: err %v after %v", err, d)
	}

	// Deadlines: the idle connection, then new ones (the pool may open more).
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		err := one(ctx)
		cancel()
		if d := time.Since(start); err == nil || d > 3*time.Second {
			t.Errorf("query %d on a frozen server: err %v after %v, want an error at the 500ms deadline", i, err, d)
		}
	}
	// Cancellation without a deadline.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	if err := db.PingContext(ctx); err == nil || time.Since(start) > 3*time.Second {
		t.Errorf("cancelled ping on a frozen server: err %v after %v", err, time.Since(start))
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		err := one(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no answer after the server resumed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A transaction spans operations; each is bounded by its own context.
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(context.Background(), `CREATE TABLE t (id int)`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("count: %d, %v", n, err)
	}
}

// TestOpenDBTimedOutStatementEnds: a control statement whose context runs out while it waits
// on the server (here for a row lock) ends there too, rather than going on without its client:
// an UPDATE the caller was told had failed must not land once the lock is released.
func TestOpenDBTimedOutStatementEnds(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	c.Exec(t, `CREATE TABLE kv (k int PRIMARY KEY, v text); INSERT INTO kv VALUES (1, 'before')`)
	db, err := OpenDB(c.DSN(c.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	holder, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec(`UPDATE kv SET v = 'held' WHERE k = 1`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err = db.ExecContext(ctx, `UPDATE kv SET v = 'late' WHERE k = 1`)
	cancel()
	if err == nil {
		t.Fatal("the UPDATE waiting on a row lock succeeded before its deadline")
	}
	// Give the server time to notice (client_connection_check_interval), then release the lock.
	time.Sleep(2500 * time.Millisecond)
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	var v string
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if err := db.QueryRow(`SELECT v FROM kv WHERE k = 1`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "before" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v != "before" {
		t.Fatalf("v = %q after the lock was released: the UPDATE that timed out went on without its client and landed", v)
	}
}

// TestCheckParamRefused: the FATAL a server before PostgreSQL 14, or on a platform that cannot
// check its clients' connections, answers the control connections' start-up parameter with
// says what to do; other errors are left as they are.
func TestCheckParamRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *pq.Error
		want string
	}{
		{&pq.Error{Severity: "FATAL", Code: "42704", Message: `unrecognized configuration parameter "client_connection_check_interval"`}, "Tandem needs PostgreSQL 15 or newer"},
		{&pq.Error{Severity: "FATAL", Code: "22023", Message: `invalid value for parameter "client_connection_check_interval": 1000`}, "add client_connection_check_interval=0 to the DSN"},
	} {
		if err := checkParamRefused(tc.err); !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("checkParamRefused(%v) = %v, want it wrapped with %q", tc.err, err, tc.want)
		}
	}
	other := &pq.Error{Severity: "FATAL", Code: "42704", Message: `unrecognized configuration parameter "foo"`}
	if err := checkParamRefused(other); err != other {
		t.Errorf("checkParamRefused(%v) = %v, want it unchanged", other, err)
	}
}
