package txshim

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/slowlink"
)

// blackHole returns a 127.0.0.1 address whose connection attempts get no answer: a listener
// with a backlog of 0 that never accepts, its queue filled, so the kernel drops further SYNs —
// a peer host that vanished, or a firewall that drops.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the accept queue; once full, the next attempt hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			if i == 0 {
				t.Fatalf("the black hole answers nothing at all: %v", err)
			}
			return addr
		}
		t.Cleanup(func() { c.Close() })
		if i > 16 {
			t.Fatal("the listener's queue does not fill")
		}
	}
}

// withHost is dsn (a URL) with its host and port set to addr.
func withHost(t *testing.T, dsn, addr string) string {
	t.Helper()
	i := strings.Index(dsn, "@")
	j := strings.Index(dsn[i:], "/")
	if i < 0 || j < 0 {
		t.Fatalf("unexpected DSN %q", dsn)
	}
	return dsn[:i+1] + addr + dsn[i+j:]
}

// TestResolveSlowPeer: a resolver pass over a peer database that answers, but over a link
// with a 1.2 s round trip, must find it reachable and settle what is prepared there. The
// pass's connect bound (2 s) covered TCP connect, start-up and a ping — several round trips
// — so such a peer always counted as unreachable, and catch-up (which waits for a pass that
// reaches the peer) never began.
func TestResolveSlowPeer(t *testing.T) {
	t.Parallel()
	e := newResolveEnv(t)
	link := slowlink.Start(t, fmt.Sprintf("127.0.0.1:%d", e.peer.Port()))
	// Site1's gid whose copy is prepared on the peer only, its xid rolled back on its own
	// database: the rule rolls the copy back.
	ctx := capCtx(t, 60*time.Second)
	tx, err := e.local.Open(t, e.local.Database()).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var xid uint64
	if err := tx.QueryRowContext(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	gid := fmt.Sprintf("tandem_site1_1_%d", xid)
	pdb := e.peer.Open(t, e.peer.Database())
	if _, err := pdb.ExecContext(ctx, "BEGIN; INSERT INTO acct VALUES (77, 1); PREPARE TRANSACTION '"+gid+"'"); err != nil {
		t.Fatal(err)
	}
	link.SetDelay(600 * time.Millisecond)
	r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: link.DSN(t, e.peerDSN()), Logger: e.logger})
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second) // as the running tandem's passes
	defer cancel()
	start := time.Now()
	rep, err := r.ResolveOnce(pctx)
	took := time.Since(start)
	t.Logf("pass took %v: %+v, err %v", took, rep, err)
	if err != nil || rep.PeerUnreachable || len(rep.RolledBack) != 1 {
		t.Fatalf("a pass over a slow (1.2 s round trip) but answering peer: took %v, peer unreachable %v, rolled back %v, err %v; want the peer reached and %s rolled back",
			took, rep.PeerUnreachable, rep.RolledBack, err, gid)
	}
}

// TestResolveDeadPeerFast: a peer database that refuses connections, or whose connection
// attempts go unanswered (a black hole), is found unreachable quickly (the TCP connect's own
// 2 s bound), whatever the start-up bound: a promotion waits for a pass. One that accepts and
// then says nothing is unreachable after the start-up bound (StartupTimeout, 2.5 s here).
//
// The cases' passes run at once, each with its own resolver: they mostly wait out their bounds.
func TestResolveDeadPeerFast(t *testing.T) {
	// Not parallel: it bounds each pass at 3 s, 0.5 to 1 s past the bounds under test, which
	// a busy machine (the package's parallel tests beside it) may eat.
	e := newResolveEnv(t)
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := ln.Addr().String()
		ln.Close()
		return a
	}()
	// A server that accepts and then says nothing is bounded by StartupTimeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// The promotion's pass (WithStartupTimeout) is bounded by its own, shorter start-up bound
	// whatever the resolver's.
	var wg sync.WaitGroup
	for _, c := range []struct {
		name, addr   string
		startup, ctx time.Duration
	}{{"refused", refused, 0, 0}, {"black hole", blackHole(t), 0, 0}, {"silent", silent.Addr().String(), 2500 * time.Millisecond, 0},
		{"silent, a promotion's pass", silent.Addr().String(), 0, 2 * time.Second}} {
		r := NewResolver(ResolverConfig{Site: "site1", LocalDSN: e.localDSN(), PeerDSN: withHost(t, e.peerDSN(), c.addr), Logger: e.logger,
			StartupTimeout: c.startup})
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			if c.ctx > 0 {
				ctx = WithStartupTimeout(ctx, c.ctx)
			}
			start := time.Now()
			rep, err := r.ResolveOnce(ctx)
			took := time.Since(start)
			cancel()
			t.Logf("%s: pass took %v: %+v, err %v", c.name, took, rep, err)
			if err != nil || !rep.PeerUnreachable || took > 3*time.Second {
				t.Errorf("%s: took %v, peer unreachable %v, err %v; want unreachable within 3 s", c.name, took, rep.PeerUnreachable, err)
			}
		})
	}
	wg.Wait()
}
