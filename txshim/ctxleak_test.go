package txshim

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// liveCtx is a long-lived context (a Run's) that counts the callbacks registered on it
// (context.AfterFunc, and the contexts derived from it) and not yet unregistered.
type liveCtx struct {
	context.Context // Background: Value finds no cancelCtx, so context asks AfterFunc below
	inner           context.Context
	mu              sync.Mutex
	live            int
	cancel          context.CancelFunc
}

func newLiveCtx(t *testing.T) *liveCtx {
	inner, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &liveCtx{Context: context.Background(), inner: inner, cancel: cancel}
}

func (c *liveCtx) Done() <-chan struct{} { return c.inner.Done() }
func (c *liveCtx) Err() error            { return c.inner.Err() }

func (c *liveCtx) AfterFunc(f func()) func() bool {
	c.mu.Lock()
	c.live++
	c.mu.Unlock()
	stop := context.AfterFunc(c.inner, f)
	return func() bool {
		ok := stop()
		if ok {
			c.mu.Lock()
			c.live--
			c.mu.Unlock()
		}
		return ok
	}
}

func (c *liveCtx) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live
}

// TestCatchUpReleasesRunContext: a connection of OpenDB (ctlConn) keeps its last operation's
// cancel watch registered on that operation's context until its next operation — and, closed,
// for good. Catch-up's first round reads the local WAL position under the caller's context
// (the sidecar's run context) and the verify after it compares under the Shipper's run
// context, each on a sql.DB closed at the end: every catch-up (each peer outage, each failed
// attempt: a hold that timed out, every 2 s) left registrations on the run context, each
// holding a closed connection and its buffers, for as long as the process runs.
func TestCatchUpReleasesRunContext(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE items (id int PRIMARY KEY)`)
	installPair(t, p)
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: p.local.DSN("app"), PeerDSN: p.peer.DSN("app"), Conns: 1,
		OpTimeout: 3 * time.Second, SequenceInterval: -1, DecisionRetention: -1, VerifyCatchUp: true, Logger: quietLogger()})
	sh.SetTerm(1)
	run := newLiveCtx(t)
	done := make(chan struct{})
	go func() { defer close(done); sh.Run(run) }()
	t.Cleanup(func() { run.cancel(); <-done })

	okHold := func(context.Context) (func(), error) { return func() {}, nil }
	failHold := func(context.Context) (func(), error) { return nil, errors.New("hold timed out") }
	cycle := func(i int, hold func(context.Context) (func(), error)) {
		t.Helper()
		before := time.Now()
		sh.goDown("test", nil)
		err := sh.CatchUp(run, hold)
		if hold == nil || err != nil {
			return
		}
		waitFor(t, "the verify after catch-up", func() bool {
			r, ok := sh.LastVerify()
			return ok && r.At.After(before)
		})
	}
	for i := 0; i < 3; i++ {
		cycle(i, okHold)
		cycle(i, failHold)
	}
	time.Sleep(100 * time.Millisecond)
	base := run.count()
	const n = 20
	for i := 0; i < n; i++ {
		cycle(i, okHold)
		cycle(i, failHold)
	}
	time.Sleep(100 * time.Millisecond)
	if got := run.count(); got > base+2 {
		t.Fatalf("callbacks registered on the run context: %d after warm-up, %d after %d more catch-ups (and %d failed ones): they grow with each", base, got, n, n)
	}
}
