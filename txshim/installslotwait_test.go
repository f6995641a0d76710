package txshim

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestInstallSlotWaitsForPrepared: making a logical slot waits for every transaction in
// progress on the server, a prepared one too. Install run where the slot is missing (dropped,
// or a site's first install) beside a transaction left prepared (in doubt, until the resolver
// or an operator settles it) waited without end and without a word. It must say what it waits
// for, naming the prepared transaction, and go on once that is settled.
func TestInstallSlotWaitsForPrepared(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	p.local.Exec(t, `BEGIN; INSERT INTO t VALUES (1); PREPARE TRANSACTION 'held_in_doubt'`)
	ctx := capCtx(t, 90*time.Second)
	var logged logBuffer
	done := make(chan error, 1)
	go func() {
		done <- Install(ctx, "site1", p.local.DSN("app"), p.peer.DSN("app"), slog.New(slog.NewTextHandler(&logged, nil)))
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logged.String(), "held_in_doubt") && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("install ended while a transaction was prepared: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	said := strings.Contains(logged.String(), "held_in_doubt")
	p.local.Exec(t, `COMMIT PREPARED 'held_in_doubt'`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("install once the prepared transaction is settled: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("install still waits after the prepared transaction was settled")
	}
	if !said {
		t.Errorf("install waited 20s for a prepared transaction without naming it; log:\n%s", logged.String())
	}
}
