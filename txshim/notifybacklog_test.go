package txshim

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestNotifyBacklogHeldBounded: a listening session whose transaction ends while a large backlog
// of notifications waits for it (PostgreSQL sends the whole backlog before the ReadyForQuery of
// the COMMIT the shim runs itself) must not take the sidecar's memory for it: the shim holds the
// notifications for the client's ReadyForQuery, and a client that does not read then kept
// every one in memory (here 140 MB; PostgreSQL's queue may hold 8 GB). The client still gets
// them all, in order, after its COMMIT's reply.
func TestNotifyBacklogHeldBounded(t *testing.T) {
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	conn := s.connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE nb (i int)"); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, s)
	r.query("LISTEN ch")
	r.query("BEGIN")
	r.query("INSERT INTO nb VALUES (1)")
	const batches, per = 4, 5000
	for i := range batches {
		if _, err := conn.Exec(ctx, fmt.Sprintf("SELECT pg_notify('ch', repeat('y', 7000) || '.' || (g + %d)) FROM generate_series(1, %d) g", i*per, per)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	stop, peak := make(chan struct{}), make(chan uint64)
	go func() {
		var p uint64
		for {
			select {
			case <-stop:
				peak <- p
				return
			case <-time.After(10 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			p = max(p, ms.HeapAlloc)
		}
	}()
	r.simple("COMMIT") // and not read for a while
	time.Sleep(4 * time.Second)
	close(stop)
	if grew := (<-peak - min(before, 1<<62)) >> 20; grew > 48 {
		t.Errorf("the shim's heap grew by %d MB holding a backlog of %d notifications of 7 kB for a client that does not read; want it bounded", grew, batches*per)
	}
	r.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	m, err := r.fe.Receive()
	if cc, ok := m.(*pgproto3.CommandComplete); err != nil || !ok || string(cc.CommandTag) != "COMMIT" {
		t.Fatalf("first reply %T %+v %v, want CommandComplete COMMIT", m, m, err)
	}
	for n := 1; ; n++ {
		m, err := r.fe.Receive()
		if err != nil {
			t.Fatalf("after %d notifications: %v", n-1, err)
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			if n-1 != batches*per {
				t.Fatalf("%d notifications before ReadyForQuery, want %d", n-1, batches*per)
			}
			break
		}
		nr, ok := m.(*pgproto3.NotificationResponse)
		if want := fmt.Sprintf(".%d", n); !ok || len(nr.Payload) < len(want) || nr.Payload[len(nr.Payload)-len(want):] != want {
			t.Fatalf("message %d: %T, want the notification ending %s", n, m, want)
		}
	}
}
