package txshim

import (
	"testing"
	"time"
)

// TestIdleSessionTimeoutAfterCommit: the client's idle_session_timeout, turned off by the shim
// while its dual commit (or a plain commit's wait for the peer) went on, was put back by a SET
// written to the backend but not sent: it went only with the client's next request. A client
// that went idle after its commit kept its session for good, where PostgreSQL ends it once the
// timeout has passed.
func TestIdleSessionTimeoutAfterCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &slowPeer{&fakePeer{c: c, t: t}, 0}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	ctx := capCtx(t, 30*time.Second)
	for i, q := range []string{
		"INSERT INTO acct VALUES (1, 1)",
		"BEGIN; INSERT INTO acct VALUES (2, 1); COMMIT",
		"BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; INSERT INTO acct VALUES (3, 1); COMMIT",
	} {
		conn := s.connect(t)
		if _, err := conn.Exec(ctx, "SET idle_session_timeout = '200ms'"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%d: %s: %v", i, q, err)
		}
		time.Sleep(700 * time.Millisecond)
		if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
			t.Errorf("%d: %s: after 700 ms idle the session goes on, want it ended by idle_session_timeout (200ms)", i, q)
		}
	}
}
