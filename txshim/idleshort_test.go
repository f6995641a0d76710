package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/internal/slowlink"
)

// TestIdleSessionTimeoutShortDualCommit: a client whose idle_session_timeout is shorter than a
// round trip between the shim and its database (here a link with 30 ms each way). The shim
// turned the setting off for the dual commit's wait for the peer with a SET sent once the reply
// to its reading (SHOW, pipelined behind PREPARE TRANSACTION) came: for that round trip the
// backend sat idle outside a transaction with the client's timeout running, which ended the
// session there — the client heard its COMMIT failed, the transaction was left prepared for a
// resolver. PostgreSQL answers such a commit at once, and so does the shim when the SET goes
// right behind the SHOW.
func TestIdleSessionTimeoutShortDualCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	link := slowlink.Start(t, fmt.Sprintf("127.0.0.1:%d", c.Port()))
	s := startShimDSN(t, c, link.DSN(t, c.DSN(c.Database())), Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	link.SetDelay(30 * time.Millisecond)
	ctx := capCtx(t, 60*time.Second)
	for i := 0; i < 3; i++ {
		conn := s.connect(t)
		if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; SET idle_session_timeout = '40ms'; INSERT INTO acct VALUES (%d, 1); COMMIT", i)); err != nil {
			t.Errorf("commit %d: %v (%d left prepared)", i, err, preparedCount(t, c))
		}
		conn.Close(context.Background())
	}
	if n := rowCount(t, c, "true"); n != 3 {
		t.Errorf("%d rows committed, want 3", n)
	}

	// A PREPARE that fails (a deferred unique check) leaves the client's value as it was.
	c.Exec(t, `CREATE TABLE dq (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)`)
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, "SET idle_session_timeout = '1h'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; INSERT INTO dq VALUES (1), (1); COMMIT"); pgCode(err) != "23505" {
		t.Errorf("a PREPARE that fails: %v, want 23505", err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW idle_session_timeout").Scan(&v); err != nil || v != "1h" {
		t.Errorf("after a PREPARE that failed: idle_session_timeout %q (%v), want 1h", v, err)
	}
}

// TestIdleSessionTimeoutShortPlainCommit: as TestIdleSessionTimeoutShortDualCommit, for a
// write committed plainly (a WITH HOLD cursor) whose reply waits until the peer has it: the
// guard was sent once the COMMIT's reply came, and for that round trip the backend sat idle
// with the client's timeout running: the session ended there, the transaction committed and
// the client told the connection was lost.
func TestIdleSessionTimeoutShortPlainCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE TABLE dq (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)`)
	link := slowlink.Start(t, fmt.Sprintf("127.0.0.1:%d", c.Port()))
	s := startShimDSN(t, c, link.DSN(t, c.DSN(c.Database())), Options{Peer: &slowPeer{&fakePeer{c: c, t: t}, 0}}, ModeDual, 1)
	link.SetDelay(30 * time.Millisecond)
	ctx := capCtx(t, 60*time.Second)
	for i := 0; i < 3; i++ {
		conn := s.connect(t)
		if _, err := conn.Exec(ctx, fmt.Sprintf("BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; SET idle_session_timeout = '40ms'; INSERT INTO acct VALUES (%d, 1); COMMIT", i)); err != nil {
			t.Errorf("commit %d: %v", i, err)
		}
		conn.Close(context.Background())
	}
	if st := s.Stats(); st.Unwrapped != 3 {
		t.Errorf("stats %+v, want 3 plain commits", st)
	}

	// A COMMIT that fails (a deferred unique check) leaves the client's value as it was.
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, "SET idle_session_timeout = '1h'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; INSERT INTO dq VALUES (1), (1); COMMIT"); pgCode(err) != "23505" {
		t.Errorf("a COMMIT that fails: %v, want 23505", err)
	}
	var v string
	if err := conn.QueryRow(ctx, "SHOW idle_session_timeout").Scan(&v); err != nil || v != "1h" {
		t.Errorf("after a COMMIT that failed: idle_session_timeout %q (%v), want 1h", v, err)
	}
}
