package main

import (
	"context"
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

// TestResolveLateDatabaseUnsettled: a database that did not answer before the pass but did
// during it left its recently prepared transactions out of the "before" set, so after the
// pass skipped them (prepared less than Settle ago) tandem resolve exited 0 saying
// "settled" while they were still prepared. Here the peer database refuses the first
// connection (the read before the pass) and answers every later one.
func TestResolveLateDatabaseUnsettled(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)
	dsn := c.DSN(c.Database())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db := createPeerDB(ctx, t, dsn)
	peerDB := c.Open(t, "peer")
	gid := prepareSiteGID(ctx, t, peerDB, "young")

	addr := lateProxy(t, fmt.Sprintf("127.0.0.1:%d", c.Port()))
	resolve := resolveSite(t, dsn, "postgres://"+pgtest.Superuser+"@"+addr+"/peer?sslmode=disable")
	code, out := resolve()
	if queryCount(t, db, gid) != 1 {
		t.Fatalf("%s was settled by the pass (output %q); the test wants it left alone as prepared just now", gid, out)
	}
	if code != 1 || !strings.Contains(out, gid) {
		t.Errorf("a transaction prepared just now on a database that answered only from the pass on: exit %d, output %q; want exit 1 naming %s", code, out, gid)
	}
}

// lateProxy listens on loopback and forwards to target, except that it closes the first
// connection it accepts at once.
func lateProxy(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	var n atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			if n.Add(1) == 1 {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, true)
			conns.Store(out, true)
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); io.Copy(in, out); in.Close() }()
		}
	}()
	return ln.Addr().String()
}
