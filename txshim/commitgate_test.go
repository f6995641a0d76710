package txshim

import (
	"context"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCommitGateInvariants drives commitGate alone: writes (enter), procedures (enterProc),
// tracked read commits (track) and holds, some cancelled while pausing or held. While a hold
// is granted nothing is inside; holds never overlap; the flags are reset at the end. The gate
// is the test's own and its goroutines mostly sleep: it runs beside other tests.
func TestCommitGateInvariants(t *testing.T) {
	t.Parallel()
	var g commitGate
	var inside, holds atomic.Int32
	var stop atomic.Bool
	var wg sync.WaitGroup
	var fail atomic.Value
	bad := func(s string) { fail.CompareAndSwap(nil, s) }
	work := func(kind int) {
		defer wg.Done()
		r := rand.New(rand.NewSource(int64(kind)))
		for !stop.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.Intn(3000))*time.Microsecond)
			switch kind % 3 {
			case 0:
				if g.enter(ctx, nil) == nil {
					inside.Add(1)
					if holds.Load() > 0 {
						bad("write entered under a granted hold")
					}
					time.Sleep(time.Duration(r.Intn(200)) * time.Microsecond)
					inside.Add(-1)
					g.leave(nil)
				}
			case 1:
				if g.enterProc(ctx, nil) == nil {
					inside.Add(1)
					if holds.Load() > 0 {
						bad("procedure entered under a granted hold")
					}
					time.Sleep(time.Duration(r.Intn(500)) * time.Microsecond)
					inside.Add(-1)
					g.leaveSlow(nil)
				}
			case 2:
				if g.track(nil) {
					inside.Add(1)
					if holds.Load() > 0 {
						bad("tracked under a granted hold")
					}
					time.Sleep(time.Duration(r.Intn(200)) * time.Microsecond)
					inside.Add(-1)
					g.leaveSlow(nil)
				}
			}
			cancel()
		}
	}
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go work(i)
	}
	var granted, refused atomic.Int32
	for h := 0; h < 3; h++ {
		wg.Add(1)
		go func(h int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(100 + h)))
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.Intn(2000))*time.Microsecond)
				release, err := g.hold(ctx)
				cancel()
				if err != nil {
					refused.Add(1)
					continue
				}
				granted.Add(1)
				if holds.Add(1) != 1 {
					bad("two holds granted at once")
				}
				if n := inside.Load(); n != 0 {
					bad("hold granted with something inside")
				}
				time.Sleep(time.Duration(r.Intn(300)) * time.Microsecond)
				if n := inside.Load(); n != 0 {
					bad("something entered under a granted hold")
				}
				holds.Add(-1)
				release()
				release() // idempotent
			}
		}(h)
	}
	time.Sleep(3 * time.Second)
	stop.Store(true)
	wg.Wait()
	if f := fail.Load(); f != nil {
		t.Fatal(f)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held || g.pausing || g.active != 0 || g.slow != 0 {
		t.Fatalf("gate left held=%v pausing=%v active=%d slow=%d", g.held, g.pausing, g.active, g.slow)
	}
	t.Logf("holds granted %d, refused %d", granted.Load(), refused.Load())
}

// TestCommitGateIdleSeesProcAfterPause: a procedure that waited out a cancelled hold's pause is
// counted by idle (Drain).
func TestCommitGateIdleSeesProcAfterPause(t *testing.T) {
	var g commitGate
	if err := g.enterProc(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	hctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	holdErr := make(chan error, 1)
	go func() { _, err := g.hold(hctx); holdErr <- err }()
	for {
		g.mu.Lock()
		p := g.pausing
		g.mu.Unlock()
		if p {
			break
		}
		time.Sleep(time.Millisecond)
	}
	entered := make(chan error, 1)
	go func() { entered <- g.enterProc(context.Background(), nil) }()
	select {
	case <-entered:
		t.Fatal("procedure entered while a hold pauses")
	case <-time.After(20 * time.Millisecond):
	}
	if err := <-holdErr; err == nil {
		t.Fatal("hold granted while a procedure runs")
	}
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	g.leaveSlow(nil)
	ictx, icancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer icancel()
	if err := g.idle(ictx); err == nil {
		t.Fatal("idle returned with a procedure running")
	}
}
