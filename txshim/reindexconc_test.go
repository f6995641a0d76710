package txshim

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestReindexConcurrentlyInProgressVerify: a REINDEX CONCURRENTLY still running on one
// database — here waiting for a reader of the table before it marks the old index dead — has
// swapped the indexes: the new one bears the index's name and is the one
// pg_stat_progress_create_index names, while the old one, now <name>_ccold, is invalid until
// the statement drops it. That is a statement in progress, not a leftover: verify must not report
// an invalid index the databases do not share (and install and resync must not refuse for it).
func TestReindexConcurrentlyInProgressVerify(t *testing.T) {
	t.Parallel()
	verifyDuringConcurrentIndex(t, `REINDEX INDEX CONCURRENTLY kv_v`, "to wait for the reader before marking the old index dead",
		func(p *capPair) bool {
			if queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_stat_progress_create_index WHERE phase = 'waiting for readers before marking dead'`) != 1 {
				return false
			}
			if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('kv_v_ccold') AND NOT indisvalid`); n != 1 {
				t.Fatalf("no invalid kv_v_ccold while the REINDEX CONCURRENTLY runs (%d)", n)
			}
			return true
		})
}

// TestDropIndexConcurrentlyInProgressVerify: a DROP INDEX CONCURRENTLY marks the index invalid
// first, then waits for the table's readers before it drops it; pg_stat_progress_create_index
// does not show it. While it waits on one database, the index it drops is a statement in
// progress, not a leftover: verify must not report an invalid index on that database only.
func TestDropIndexConcurrentlyInProgressVerify(t *testing.T) {
	t.Parallel()
	verifyDuringConcurrentIndex(t, `DROP INDEX CONCURRENTLY kv_v`, "to mark kv_v invalid and wait for the reader",
		func(p *capPair) bool {
			return queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('kv_v') AND NOT indisvalid`) == 1 &&
				queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'DROP INDEX CONCURRENTLY%'`) == 1
		})
}

// verifyDuringConcurrentIndex runs stmt, a concurrent index statement on the index kv_v, on the
// local database while a reader holds its lock on the table, waits until waiting says the
// statement waits for that reader, and checks verify then names no kv_v index; the statement
// must end well once the reader is gone.
func verifyDuringConcurrentIndex(t *testing.T, stmt, what string, waiting func(p *capPair) bool) {
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`, `INSERT INTO kv VALUES (1, 'one')`, `CREATE INDEX kv_v ON kv (v)`)
	ctx := capCtx(t, 60*time.Second)
	// A reader holding its lock on the table (READ COMMITTED: no snapshot between statements),
	// which the statement waits for.
	reader, err := p.ldb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	if _, err := reader.ExecContext(ctx, `SELECT count(*) FROM kv`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() {
		_, err := p.ldb.ExecContext(sctx, stmt)
		done <- err
	}()
	defer func() {
		stop()
		_ = reader.Rollback()
		<-done
	}()
	waitFor(t, "the "+strings.Fields(stmt)[0]+" "+what, func() bool { return waiting(p) })
	diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(diffs, "\n"), "kv_v") {
		t.Errorf("verify during %s in progress: %q; want no index named", stmt, diffs)
	}
	_ = reader.Rollback()
	if err := <-done; err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	done <- nil // for the deferred wait
}
