package txshim

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestVerifySnapshotsAfterConnecting: verify takes one database's snapshot after the other, and
// a commit landing on both between the two shows as a difference (README). It took the local
// snapshot before it even connected to the peer — a TCP, TLS and authentication exchange over
// the link between the sites, each time — so that a commit landing on both databases while it
// connected (here: held until one did) was called a difference, and under a steady stream of
// commits nearly every run of tandem verify named one. Both sessions are set up first, then
// their snapshots taken one right after the other.
func TestVerifySnapshotsAfterConnecting(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY)`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted, release := make(chan struct{}, 1), make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- struct{}{}:
			default:
			}
			go func() {
				defer c.Close()
				<-release // the peer's connection is held here, as a slow link holds it
				b, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.peer.Port()))
				if err != nil {
					return
				}
				defer b.Close()
				go func() { io.Copy(b, c); b.Close() }()
				io.Copy(c, b)
			}()
		}
	}()
	peerDSN := fmt.Sprintf("postgres://%s@%s/app?sslmode=disable", pgtest.Superuser, ln.Addr())
	type result struct {
		diffs []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		diffs, err := Verify(capCtx(t, 30*time.Second), p.local.DSN("app"), peerDSN)
		done <- result{diffs, err}
	}()
	select {
	case <-accepted:
	case r := <-done:
		t.Fatalf("verify ended without connecting to the peer: %q, %v", r.diffs, r.err)
	case <-time.After(20 * time.Second):
		t.Fatal("verify did not connect to the peer")
	}
	p.both(t, `INSERT INTO kv VALUES (1)`) // a commit landing on both while verify connects
	close(release)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.diffs) > 0 {
		t.Errorf("verify named a commit that landed on both databases while it connected to the peer:\n%s", strings.Join(r.diffs, "\n"))
	}
}
