package txshim

import (
	"fmt"
	"testing"
	"time"
)

// TestLocalFastShutdownWithBacklog: the master's database is restarted (a fast shutdown, as
// pg_ctl restart does) while the peer lacks some of its commits (solo, catch-up to come). The
// walsender of the Shipper's slot lets the shutdown finish only once its client reports having
// confirmed everything it was sent, which the decoder does not while the peer lacks it: the
// shutdown waited for ever (every new connection refused: "the database system is shutting
// down"). The decoder now notices the shutdown and leaves the stream; the slot keeps what the
// peer lacks, and catch-up ships it once the database is back.
func TestLocalFastShutdownWithBacklog(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE kv (k int PRIMARY KEY, v text)`)
	sh := syncedShipper(t, p)
	p.peer.Kill()
	const n = 20
	for i := 1; i <= n; i++ {
		p.local.Exec(t, fmt.Sprintf(`INSERT INTO kv VALUES (%d, 'solo')`, i))
	}
	waitForLong(t, "the backlog", 20*time.Second, func() bool { return sh.Backlog() == n && sh.linkState() == linkDown })
	start := time.Now()
	err := p.local.Stop()
	t.Logf("fast shutdown of the local database with a backlog for the peer: %v after %v", err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("fast shutdown: %v", err)
	}
	if err := p.local.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := p.peer.Restart(); err != nil {
		t.Fatal(err)
	}
	// The slot kept what the peer lacks: catch-up ships it after the restart.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := sh.CatchUp(capCtx(t, 20*time.Second), nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CatchUp after the restart: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := queryOne[int](t, p.pdb, `SELECT count(*) FROM kv`); got != n {
		t.Fatalf("the peer has %d rows after catch-up, want %d", got, n)
	}
	requireSame(t, p)
}
