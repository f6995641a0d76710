package txshim

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// gateProxy forwards TCP connections to a server while open; otherwise it takes a connection
// and closes it at once. close ends the listener and every connection it forwards.
type gateProxy struct {
	ln    net.Listener
	open  atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
}

func startGateProxy(t *testing.T, target string) *gateProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &gateProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !p.open.Load() {
				c.Close()
				continue
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, b)
			p.mu.Unlock()
			go func() { io.Copy(b, c); b.Close() }()
			go func() { io.Copy(c, b); c.Close() }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *gateProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestDrainEndsPastFailedHost: a handover's Drain that runs out terminates the backends still in
// flight on each server they are on (endInFlight). It stopped at the first server where that
// failed — here hosts of local_dsn that no longer take connections, with a session's backend on
// each — and left the backends on the others running, whichever came after in the map's
// order: the procedure of a session on the local database's own host committed after Drain
// returned. (With seven failing hosts, the working one comes first one time in eight: the
// test then passes before the fix.)
func TestDrainEndsPastFailedHost(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE pf() LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(4); INSERT INTO acct VALUES (31, 1); COMMIT; END $$`)
	target := fmt.Sprintf("127.0.0.1:%d", c.Port())
	var proxies []*gateProxy
	var hosts []string
	for range 7 {
		p := startGateProxy(t, target)
		proxies = append(proxies, p)
		hosts = append(hosts, p.ln.Addr().String())
	}
	hosts = append(hosts, target)
	dsn := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgtest.Superuser, strings.Join(hosts, ","), c.Database())
	s := startShimDSN(t, c, dsn, Options{Peer: &fakePeer{c: c, t: t}, Logger: quietLogger()}, ModeSolo, 1)
	db := c.Open(t, c.Database())
	ctx := capCtx(t, time.Minute)
	// One session through each proxy, a statement running in each (a read, waited for and
	// ended as one that may write). Their connections end with the test (close), before the
	// sessions.
	reads := make(chan struct{}, len(proxies))
	defer func() {
		for _, p := range proxies {
			p.close()
		}
		for range proxies {
			<-reads
		}
	}()
	for i, p := range proxies {
		p.open.Store(true)
		conn := s.connect(t)
		p.open.Store(false)
		go func() {
			conn.Exec(ctx, "SELECT pg_sleep(8)")
			reads <- struct{}{}
		}()
		waitForLong(t, "the statement", 10*time.Second, func() bool {
			return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(8)' AND state = 'active'`) > i
		})
	}
	done := make(chan error, 1)
	conn := s.connect(t)
	go func() {
		_, err := conn.Exec(ctx, "CALL pf()")
		done <- err
	}()
	waitForLong(t, "the CALL", 10*time.Second, func() bool {
		return queryOne[int](t, db, `SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL pf()' AND state = 'active'`) > 0
	})
	drainPastCall(t, ctx, s, db, 3*time.Second, done, 31, "its backend was not terminated, another host's terminate having failed first")
}
