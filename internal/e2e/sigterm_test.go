package e2e

import (
	"database/sql"
	"syscall"
	"testing"
	"time"
)

// TestGracefulStopFinishesCommits: SIGTERM on the master hands over (DESIGN §6, §3 handover):
// a commit in flight at that moment is waited for and finishes, rather than having its session
// cut before the handover drains it.
func TestGracefulStopFinishesCommits(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{db: true})
	o := operatorOf(t, s1)
	if got, err := o.do("SET x 1", 5*time.Second); got != "OK site1" {
		t.Fatalf("SET x 1 -> %q, %v", got, err)
	}
	waitFor(t, 5*time.Second, "site2's database to hold x=1", func() bool { return kvValue(t, s2, "x") == "1" })

	// A lock on the peer's row holds site1's next commit of x in its peer apply.
	peer, err := sql.Open("postgres", s2.pg.DSN(s2.pg.Database()))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	lock, err := peer.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`SELECT 1 FROM wire_kv WHERE k = 'x' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	client, err := sql.Open("postgres", s1.shimDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	done := make(chan error, 1)
	go func() {
		_, err := client.Exec(`UPDATE wire_kv SET v = '2' WHERE k = 'x'`)
		done <- err
	}()
	waitFor(t, 5*time.Second, "site1's commit prepared locally", func() bool { return preparedCount(t, s1) > 0 })

	// Not kill, which would wait for the exit (forcing it after 15 s) with the lock still held.
	s1.tandem.signal(t, syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	// The lock ends here, or earlier if the apply's watchdog ended its session.
	_ = lock.Rollback()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the commit in flight at SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the commit in flight at SIGTERM has no outcome after 20s")
	}
	for _, s := range []*site{s1, s2} {
		waitFor(t, 5*time.Second, s.name+"'s database to hold x=2", func() bool { return kvValue(t, s, "x") == "2" })
	}
	if !s1.tandem.exited(15 * time.Second) {
		t.Error("site1's tandem did not exit after SIGTERM")
	}
	servedBy(t, s2.proxy, "site2", 10*time.Second)
}
