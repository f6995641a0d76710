package txshim

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestStatsInTxBeforeReady: the count of sessions inside a transaction (Stats, the status
// page, the metrics) is up to date when a client gets the ReadyForQuery that says where its
// session is. It was updated after that reply went out, and a client asking right after its
// BEGIN read the count without it (TestServeStopsEverything: "sessions in a transaction 0,
// want 1").
func TestStatsInTxBeforeReady(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	var (
		mu   sync.Mutex
		seen []int64
		s    *testShim
	)
	shim := startShim(t, c, Options{}, ModeSolo, 0)
	shim.hooks.ready.set(func() {
		mu.Lock()
		defer mu.Unlock()
		if s != nil {
			seen = append(seen, s.Stats().SessionsInTx)
		}
	})
	r := dialRaw(t, shim)
	r.conn.SetDeadline(time.Now().Add(10 * time.Second))
	mu.Lock()
	s = shim
	mu.Unlock()
	r.query("BEGIN")
	r.query("SELECT 1")
	mu.Lock()
	got := fmt.Sprint(seen)
	mu.Unlock()
	if got != "[1 1]" {
		t.Fatalf("sessions in a transaction as the replies to BEGIN and SELECT went out: %s, want [1 1]", got)
	}
	r.query("ROLLBACK")
	if n := shim.Stats().SessionsInTx; n != 0 {
		t.Fatalf("sessions in a transaction after ROLLBACK: %d, want 0", n)
	}
}
