package txshim

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestApplyWatchdogForeignPreparedManyLocks: the watchdog's pass that names a transaction
// prepared outside Tandem blocking the apply (peerPrepared) compared each lock prepared
// transactions hold with each lock of the pg_locks snapshot: with some thousands of locks held
// by prepared transactions — many dual commits prepared on the peer, or one that touched many
// partitions — it took seconds, past the pass's 2 s, so the watchdog never named it and warned
// each second that it could not end the sessions blocking the apply, its query burning the
// peer's CPU meanwhile.
func TestApplyWatchdogForeignPreparedManyLocks(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	db := c.Open(t, "app")
	if _, err := db.Exec(`CREATE TABLE kv (k int PRIMARY KEY, v text); INSERT INTO kv VALUES (1, 'one')`); err != nil {
		t.Fatal(err)
	}
	// Locks held by a prepared transaction that blocks nothing: transaction-level advisory
	// locks, which it keeps as any lock.
	prepareLocal(t, db, "app_many", `SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, 6000) g`)
	prepareLocal(t, db, "app_x", `UPDATE kv SET v = 'peer' WHERE k = 1`)
	t.Cleanup(func() {
		c.Exec(t, `ROLLBACK PREPARED 'app_x'`)
		c.Exec(t, `ROLLBACK PREPARED 'app_many'`)
	})
	ctx := capCtx(t, 60*time.Second)
	waiter, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	var pid uint32
	if err := waiter.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	wctx, stopWaiter := context.WithCancel(ctx)
	waited := make(chan error, 1)
	go func() {
		_, err := waiter.ExecContext(wctx, `UPDATE kv SET v = 'master' WHERE k = 1`)
		waited <- err
	}()
	defer func() { stopWaiter(); <-waited }()
	waitFor(t, "the waiter blocked by a prepared transaction", func() bool {
		return queryOne[bool](t, db, `SELECT 0 = ANY (pg_blocking_pids(`+strconv.FormatUint(uint64(pid), 10)+`))`)
	})
	start := time.Now()
	prepared, err := terminateBlockers(ctx, c.DSN("app"), pid, "{}", "tandem_a_1_1", slog.New(slog.NewTextHandler(&logBuffer{}, nil)))
	t.Logf("watchdog pass: %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("watchdog pass: %v", err)
	}
	if !prepared.any || !strings.Contains(prepared.foreign, "'app_x'") || strings.Contains(prepared.foreign, "app_many") {
		t.Fatalf("watchdog pass tells %+v, want app_x, and not app_many, which blocks nothing", prepared)
	}
}
