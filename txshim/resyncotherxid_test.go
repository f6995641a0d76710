package txshim

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestResyncOtherDatabaseCommits: commits of another database of the local server are in
// neither the copy nor the stream, and no hold stops them. Counted among the commits the copy's
// snapshot does not see and that may lie before its WAL position (commitsUnseen: any xid begun
// after the snapshot and committed by the time it looks), another application's steady writes
// made Resync take its snapshot again and again, and fail after resyncWindowWait.
func TestResyncOtherDatabaseCommits(t *testing.T) {
	t.Parallel()
	p, other, sh := otherDatabasePair(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	defer func() { stop.Store(true); wg.Wait() }()
	for range 4 {
		wg.Add(1)
		go func() { // another application's steady writes (asynchronous commits: the local WAL flush lags)
			defer wg.Done()
			for !stop.Load() {
				other.Exec(`SET synchronous_commit = off; INSERT INTO hits VALUES (1)`)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := sh.Resync(capCtx(t, 60*time.Second), nil); err != nil {
		t.Fatalf("Resync after %v: %v", time.Since(start).Round(time.Second), err)
	}
	requireSame(t, p)
}
