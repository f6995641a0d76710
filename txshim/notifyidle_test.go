package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/slowlink"
)

// TestNotifyWhileIdleAfterCommit: after a dual commit of a session whose idle_session_timeout
// is on, the shim puts the setting back with a statement of its own sent behind the client's
// reply. A notification the backend sent while that statement was on its way was held for the
// client's next ReadyForQuery — and so was every later one: a client idle in LISTEN heard
// nothing until it sent a request. PostgreSQL delivers a notification to an idle session at once.
func TestNotifyWhileIdleAfterCommit(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	// The shim's backend behind a link whose delay keeps its own statement on the way while
	// the notification comes.
	link := slowlink.Start(t, fmt.Sprintf("127.0.0.1:%d", c.Port()))
	s := startShimDSN(t, c, link.DSN(t, c.DSN(c.Database())), Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	r := dialRaw(t, s)
	notifier := dialRawDSN(t, c.DSN(c.Database()))
	if got := r.query("SET idle_session_timeout = '1h'"); got != "CZ" {
		t.Fatalf("SET: %q", got)
	}
	if got := r.query("LISTEN tandem_idle"); got != "CZ" {
		t.Fatalf("LISTEN: %q", got)
	}
	link.SetDelay(300 * time.Millisecond)
	if got := r.query("BEGIN; INSERT INTO acct VALUES (1, 0); COMMIT"); got != "CCCZ" {
		t.Fatalf("commit: %q", got)
	}
	if got := notifier.query("NOTIFY tandem_idle, 'x'"); got != "CZ" {
		t.Fatalf("NOTIFY: %q", got)
	}
	r.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := r.fe.Receive()
	if err != nil {
		t.Fatalf("idle listener: no notification within 5 s (%v)", err)
	}
	if n, ok := m.(*pgproto3.NotificationResponse); !ok || n.Payload != "x" {
		t.Fatalf("idle listener got %#v, want the notification", m)
	}
	r.conn.SetReadDeadline(time.Time{})
	link.SetDelay(0)
	if got := r.query("SELECT 1"); got != "TDCZ" {
		t.Fatalf("after: %q", got)
	}
}
