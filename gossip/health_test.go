package gossip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
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

// serveEach listens on loopback and runs handle on each connection it accepts (and closes it
// after) until the test ends, which then waits for the handlers.
func serveEach(t *testing.T, handle func(c net.Conn)) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { l.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return l
}

// closingListener listens on loopback and closes every connection it accepts, until it is
// closed (an accept that fails otherwise — EMFILE — is retried).
func closingListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			c.Close()
		}
	}()
	return l
}

func TestCheckerTCP(t *testing.T) {
	t.Parallel()
	l := closingListener(t)
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
	t.Parallel()
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
	t.Parallel()
	err := NewChecker(config.Server{Health: "icmp"}, nil).Run(t.Context(), func(bool) {})
	if err == nil {
		t.Fatal("unknown health kind accepted")
	}
}

// TestCheckerSendExpect: with health_send/health_expect the tcp check writes a request and
// wants the reply: a server that accepts but hangs (or answers wrongly) fails within
// health_timeout, where a bare connect would pass.
//
// Only the check of the hanging server is timed, with a health_timeout of 1 s (300 ms ran out
// on a loaded machine before the request was even written) against a server that holds the
// connection for 30 s; the checks that must pass (or fail on a wrong reply) are given a long
// one: on a loaded machine the test's server may take longer than 300 ms to answer, which is
// no failure of the check.
func TestCheckerSendExpect(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	reply := "PONG site1\n" // "" hangs: reads and never answers
	l := serveEach(t, func(c net.Conn) {
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		mu.Lock()
		r := reply
		mu.Unlock()
		if string(buf[:n]) == "PING\n" && r != "" {
			c.Write([]byte(r))
			if !strings.HasPrefix(r, "PONG") {
				return // a wrong reply, and the server closes
			}
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		c.Read(buf) // hold the connection until the checker closes it
	})
	set := func(r string) { mu.Lock(); reply = r; mu.Unlock() }
	ep := config.Endpoint{Name: "operators", Address: l.Addr().String(), HealthSend: "PING\n", HealthExpect: "PONG"}
	c := NewChecker(config.Server{HealthTimeout: time.Second, Endpoints: []config.Endpoint{ep}}, testLogger(t))
	patient := NewChecker(config.Server{HealthTimeout: 20 * time.Second, Endpoints: []config.Endpoint{ep}}, testLogger(t))
	ctx := t.Context()

	if err := patient.checkTCP(ctx); err != nil {
		t.Fatalf("answering server: %v", err)
	}
	set("")
	start := time.Now()
	err := c.checkTCP(ctx)
	if err == nil || !strings.Contains(err.Error(), `no "PONG"`) {
		t.Errorf("hanging server: %v, want a missing reply", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("hanging server failed after %v, want about the 1s health_timeout, not the 30 s it holds the connection", d)
	}
	bare := NewChecker(config.Server{HealthTimeout: 20 * time.Second,
		Endpoints: []config.Endpoint{{Name: "operators", Address: ep.Address}}}, testLogger(t))
	if err := bare.checkTCP(ctx); err != nil {
		t.Errorf("a bare connect to the hanging server: %v, want it to pass (why send/expect exists)", err)
	}
	set("ERR busy\n")
	if err := patient.checkTCP(ctx); err == nil || !strings.Contains(err.Error(), "ERR busy") {
		t.Errorf("wrong reply: %v, want it named", err)
	}
	set("PONG site1\n")
	if err := patient.checkTCP(ctx); err != nil {
		t.Errorf("answering again: %v", err)
	}
}

// TestNewCheckerDefaults: a Server left zero is checked with the defaults config fills in for
// keys a file leaves out (README: health_interval 1s, health_timeout 1s, health_failures 2),
// not with a second set of its own.
func TestNewCheckerDefaults(t *testing.T) {
	t.Parallel()
	c := NewChecker(config.Server{}, testLogger(t))
	if c.s.HealthInterval != config.DefaultHealthInterval || c.s.HealthTimeout != config.DefaultHealthTimeout ||
		c.s.HealthFailures != config.DefaultHealthFailures {
		t.Errorf("zero Server checked every %v, timeout %v, down after %d failures; want config's defaults %v, %v, %d",
			c.s.HealthInterval, c.s.HealthTimeout, c.s.HealthFailures,
			config.DefaultHealthInterval, config.DefaultHealthTimeout, config.DefaultHealthFailures)
	}
}

// TestCheckerTCPOneTimeout: with several endpoints, one check is bounded by health_timeout (the
// README's per-check limit), not one timeout per endpoint: each endpoint here takes most of the
// timeout to answer, the last one never does, and the check fails within about one timeout.
// Probed one after another, it took about three.
func TestCheckerTCPOneTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 600 * time.Millisecond
	var (
		conns     sync.WaitGroup
		listeners []net.Listener
	)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
		conns.Wait()
	}()
	serve := func(delay time.Duration, answer bool) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		conns.Go(func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				conns.Go(func() {
					defer c.Close()
					buf := make([]byte, 64)
					c.SetReadDeadline(time.Now().Add(3 * time.Second))
					c.Read(buf)
					time.Sleep(delay)
					if answer {
						c.Write([]byte("PONG\n"))
					}
					c.Read(buf) // until the checker closes it, or the deadline
				})
			}
		})
		return l.Addr().String()
	}
	var eps []config.Endpoint
	for i, slow := range []bool{true, true, false} {
		eps = append(eps, config.Endpoint{Name: fmt.Sprintf("ep%d", i), Address: serve(timeout*2/3, slow), HealthSend: "PING\n", HealthExpect: "PONG"})
	}
	c := NewChecker(config.Server{HealthTimeout: timeout, Endpoints: eps}, testLogger(t))
	start := time.Now()
	err := c.checkTCP(t.Context())
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "endpoint ep2") {
		t.Errorf("check: %v, want endpoint ep2's missing reply", err)
	}
	if d > timeout+timeout/2 {
		t.Errorf("one check of %d endpoints took %v, want about the %v health_timeout", len(eps), d, timeout)
	}
}

// TestCheckerProxyHeader: a server that requires a PROXY header (the proxy's listeners send
// one to it) answers the health_send check only after one; with HealthProxy set the check
// sends a LOCAL header of that version first, and passes.
func TestCheckerProxyHeader(t *testing.T) {
	t.Parallel()
	l := serveEach(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		br := bufio.NewReader(c)
		h, err := proxyproto.Read(br)
		if err != nil || h.Command != proxyproto.LOCAL {
			return // a server that requires the header drops the connection
		}
		if line, _ := br.ReadString('\n'); line == "PING\n" {
			fmt.Fprintf(c, "PONG v%d\n", h.Version)
		}
		br.ReadByte() // hold the connection until the checker closes it
	})
	for _, v := range []string{"", config.ProxyV1, config.ProxyV2} {
		ep := config.Endpoint{Name: "operators", Address: l.Addr().String(), HealthSend: "PING\n", HealthExpect: "PONG", HealthProxy: v}
		c := NewChecker(config.Server{HealthTimeout: 500 * time.Millisecond, Endpoints: []config.Endpoint{ep}}, testLogger(t))
		err := c.checkTCP(t.Context())
		if v == "" {
			if err == nil {
				t.Errorf("no header: the check passed against a server that requires one")
			}
			continue
		}
		if err != nil {
			t.Errorf("HealthProxy %s: %v", v, err)
		}
	}
}

// TestCheckerStopsDuringProbe: a stop (ctx) while a send/expect check waits for a reply that
// does not come ends the check at once, not at its health_timeout: tandem's stop waits for the
// checker, and a site stopped while its server hangs took that long to exit (up to the
// timeout, here 10 s).
func TestCheckerStopsDuringProbe(t *testing.T) {
	t.Parallel()
	asked := make(chan struct{}, 1)
	l := serveEach(t, func(c net.Conn) {
		buf := make([]byte, 64)
		if n, _ := c.Read(buf); n > 0 {
			select {
			case asked <- struct{}{}:
			default:
			}
		}
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		c.Read(buf) // never answers; holds the connection until the checker closes it
	})
	ep := config.Endpoint{Name: "operators", Address: l.Addr().String(), HealthSend: "PING\n", HealthExpect: "PONG"}
	s := config.Server{HealthInterval: 100 * time.Millisecond, HealthTimeout: 10 * time.Second, HealthFailures: 1, Endpoints: []config.Endpoint{ep}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- NewChecker(s, testLogger(t)).Run(ctx, func(bool) {}) }()
	select {
	case <-asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the check did not send its PING within 5 s")
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Checker.Run: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Checker.Run returned %v after its stop: it waited for the check's health_timeout (10s)", d.Round(time.Millisecond))
	}
}
