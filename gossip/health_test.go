package gossip

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// reports runs c until stop and collects what it reports.
type reports struct {
	mu  sync.Mutex
	got []bool
}

func (r *reports) add(ok bool) { r.mu.Lock(); r.got = append(r.got, ok); r.mu.Unlock() }
func (r *reports) list() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.got...)
}

func runChecker(t *testing.T, s config.Server) *reports {
	t.Helper()
	r := &reports{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- NewChecker(s, testLogger(t)).Run(ctx, r.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Checker.Run: %v", err)
		}
	})
	return r
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCheckerTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	r := runChecker(t, config.Server{
		Health: config.HealthTCP, HealthInterval: 20 * time.Millisecond, HealthTimeout: 200 * time.Millisecond, HealthFailures: 3,
		Endpoints: []config.Endpoint{{Name: "operators", Address: l.Addr().String()}},
	})
	waitFor(t, 2*time.Second, "healthy reported", func() bool { return equalBools(r.list(), []bool{true}) })
	l.Close()
	start := time.Now()
	waitFor(t, 2*time.Second, "unhealthy reported after the listener closed", func() bool { return equalBools(r.list(), []bool{true, false}) })
	if time.Since(start) < 40*time.Millisecond {
		t.Fatalf("unhealthy after %s: before 3 failures at 20ms", time.Since(start))
	}
	time.Sleep(100 * time.Millisecond)
	if got := r.list(); !equalBools(got, []bool{true, false}) {
		t.Fatalf("reports %v: only changes are reported", got)
	}
}

func TestCheckerExec(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  []string
		want bool
	}{
		{"true", []string{"true"}, true},
		{"false", []string{"false"}, false},
		{"shell exit 3", []string{"sh", "-c", "echo broken; exit 3"}, false},
		{"timeout", []string{"sh", "-c", "sleep 5"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runChecker(t, config.Server{
				Health: config.HealthExec, HealthCommand: tc.cmd,
				HealthInterval: 20 * time.Millisecond, HealthTimeout: 150 * time.Millisecond, HealthFailures: 2,
			})
			waitFor(t, 3*time.Second, "a verdict", func() bool { return len(r.list()) > 0 })
			if got := r.list()[0]; got != tc.want {
				t.Fatalf("first report %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckerBadKind(t *testing.T) {
	err := NewChecker(config.Server{Health: "icmp"}, nil).Run(t.Context(), func(bool) {})
	if err == nil {
		t.Fatal("unknown health kind accepted")
	}
}
