package txshim

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
)

// slowPeer is a fakePeer that takes d to prepare a transaction and to ship a plain commit.
type slowPeer struct {
	*fakePeer
	d time.Duration
}

func (p *slowPeer) Prepare(ctx context.Context, gid string) error {
	time.Sleep(p.d)
	return p.fakePeer.Prepare(ctx, gid)
}

func (p *slowPeer) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	time.Sleep(p.d)
	return nil
}

// TestIdleSessionTimeoutWhileWaitingForPeer: a client that set idle_session_timeout shorter
// than the peer takes to prepare its transaction (or to take a plain commit) lost its session
// in the middle of the commit: the backend, idle outside a transaction while the shim waited
// for the peer after PREPARE TRANSACTION (or after COMMIT, awaitShipped), ended it with
// FATAL 57P05 — the client heard its commit failed, the transaction was left prepared on both
// databases for a resolver to commit (or had committed already). PostgreSQL answers the
// client's COMMIT at once. The shim now turns the setting off for its wait and puts the
// client's value back after it.
func TestIdleSessionTimeoutWhileWaitingForPeer(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	// The timeout is not shorter than a loaded machine may take between the client's requests
	// (at 200ms, PostgreSQL itself could end the idle session between them); the peer's time
	// well past it.
	peer := &slowPeer{&fakePeer{c: c, t: t}, 3 * time.Second}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := s.connect(t)
	if _, err := conn.Exec(ctx, "SET idle_session_timeout = '1s'"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, sql string }{
		{"dual commit", "INSERT INTO acct VALUES (1, 1)"},
		{"dual commit in a block", "BEGIN; INSERT INTO acct VALUES (2, 1); COMMIT"},
		{"plain commit (WITH HOLD cursor)", "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; INSERT INTO acct VALUES (3, 1); COMMIT; CLOSE c"},
	} {
		if _, err := conn.Exec(ctx, tc.sql); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
	}
	if n := rowCount(t, c, "true"); n != 3 {
		t.Errorf("%d rows committed, want 3", n)
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d transactions left prepared", n)
	}
	// The client's setting is as it set it: its idle session still ends.
	var v string
	if err := conn.QueryRow(ctx, "SHOW idle_session_timeout").Scan(&v); err != nil || v != "1s" {
		t.Fatalf("idle_session_timeout %q (%v), want 1s", v, err)
	}
	time.Sleep(2500 * time.Millisecond)
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Errorf("after 2.5 s idle: the session goes on, want it ended by idle_session_timeout")
	}
}
