package txshim

import (
	"github.com/jackc/pgx/v5"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestBatchRecordsBounded: the extended-protocol messages held back for their Sync are bounded
// by maxBatchBuffer, but the shim's record of each (item, 248 bytes) was not: a request of
// small messages (a 7-byte Describe each) kept some 35 times the bytes in records, and the
// session kept their slice's capacity for as long as it lasted — tens of MB per session.
func TestBatchRecordsBounded(t *testing.T) {
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	r := dialRaw(t, s)
	r.query("SELECT 1")
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	const n = maxBatchBuffer / 7
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range n {
			r.fe.Send(&pgproto3.Describe{ObjectType: 'S', Name: ""})
			if i%1000 == 0 {
				r.fe.Flush()
			}
		}
		r.fe.SendSync(&pgproto3.Sync{})
		r.fe.Flush()
	}()
	r.conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := r.until('Z')
	<-sent // the sender's last Flush may still run: the Frontend is not for two goroutines
	if err != nil {
		t.Fatalf("%d Describes and Sync: %v (%d messages)", n, err, len(got))
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if kept := (int64(ms.HeapAlloc) - int64(before)) >> 20; kept > 16 {
		t.Errorf("the shim keeps %d MB for a session idle after a request of %d Describes (%d bytes)", kept, n, 7*n)
	}
	if got := r.query("SELECT 1"); got != "TDCZ" {
		t.Fatalf("after it: %q", got)
	}
}

// TestLongBatchOneTransaction: a batch longer than maxBatchItems, sent in parts, is still one
// implicit transaction: a failure at its end leaves none of its rows, and one that succeeds is
// one commit.
func TestLongBatchOneTransaction(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	conn := s.connect(t)
	ctx := t.Context()
	if _, err := conn.Exec(ctx, "CREATE TABLE lb (i int)"); err != nil {
		t.Fatal(err)
	}
	const n = 3 * maxBatchItems / 4 // Bind, Execute and more for each: several parts
	for _, fail := range []bool{true, false} {
		b := &pgx.Batch{}
		for i := range n {
			b.Queue("INSERT INTO lb VALUES ($1)", i)
		}
		if fail {
			b.Queue("SELECT 1/0")
		}
		before := s.Stats().CommitsSolo
		err := conn.SendBatch(ctx, b).Close()
		var got int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM lb").Scan(&got); err != nil {
			t.Fatal(err)
		}
		switch {
		case fail && (err == nil || got != 0):
			t.Fatalf("failing batch: %v, %d rows, want an error and none", err, got)
		case !fail && (err != nil || got != n || s.Stats().CommitsSolo != before+1):
			t.Fatalf("batch: %v, %d rows, %d commits, want %d rows in one", err, got, s.Stats().CommitsSolo-before, n)
		}
	}
}
