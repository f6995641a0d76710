package e2e

import (
	"database/sql"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHandoverKeepsServedConnections: a switchover (DESIGN §3 handover) while an operator's
// request is being served — its server's commit held in flight by a lock on the peer's row —
// through either site's proxy. The proxies route no new connection to the old master from the
// handover on, but keep those open to its server until the drain ends: the drain lets the
// commit finish, and its reply reaches the operator. New connections land on the new master.
func TestHandoverKeepsServedConnections(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{db: true, failback: "manual"})
	setThrough(t, s1, "x", "1")
	setThrough(t, s1, "y", "1")
	waitFor(t, 5*time.Second, "site2's database to hold x=1 and y=1", func() bool {
		return kvValue(t, s2, "x") == "1" && kvValue(t, s2, "y") == "1"
	})

	// A lock on the peer's rows holds site1's next commits of x and y in their peer apply.
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
	if _, err := lock.Exec(`SELECT 1 FROM wire_kv WHERE k IN ('x', 'y') FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	// One operator through each site's proxy, both served by site1's server.
	type reply struct {
		got string
		err error
	}
	viaS1 := operatorOf(t, s1)
	servedBy(t, s2.proxy, "site1", 10*time.Second)
	viaS2, err := dialOperator(s2.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaS2.close)
	r1, r2 := make(chan reply, 1), make(chan reply, 1)
	go func() { got, err := viaS1.do("SET x 2", 30*time.Second); r1 <- reply{got, err} }()
	go func() { got, err := viaS2.do("SET y 2", 30*time.Second); r2 <- reply{got, err} }()
	waitFor(t, 5*time.Second, "site1's two commits prepared locally", func() bool { return preparedCount(t, s1) >= 2 })

	switched := make(chan struct{})
	go func() { defer close(switched); switchover(t, s1, "site2") }()
	// The handover has begun: site1 no longer says it is master, and drains.
	waitFor(t, 5*time.Second, "site1 to hand over", func() bool { return httpStatus(s1.admin, "/master") != 200 })
	time.Sleep(time.Second)
	_ = lock.Rollback()

	for name, r := range map[string]chan reply{"site1": r1, "site2": r2} {
		select {
		case r := <-r:
			if r.got != "OK site1" || r.err != nil {
				t.Errorf("the request in flight through %s's proxy at the handover -> %q, %v; want OK site1", name, r.got, r.err)
			}
		case <-time.After(40 * time.Second):
			t.Fatalf("the request in flight through %s's proxy has no outcome after 40s", name)
		}
	}
	<-switched
	for _, s := range []*site{s1, s2} {
		servedBy(t, s.proxy, "site2", 15*time.Second)
		waitFor(t, 5*time.Second, s.name+"'s database to hold x=2 and y=2", func() bool {
			return kvValue(t, s, "x") == "2" && kvValue(t, s, "y") == "2"
		})
	}
	// The connections to site1's server were cut once it lost the role.
	for name, o := range map[string]*operator{"site1": viaS1, "site2": viaS2} {
		if got, err := o.do("PING", 5*time.Second); err == nil {
			t.Errorf("the connection through %s's proxy to site1's server outlived the handover: PING -> %q", name, got)
		}
	}
}

// TestGracefulStopKeepsServedConnections: SIGTERM on the master while an operator's request is
// being served through each site's proxy, its server's commit held in flight by a lock on the
// peer's row. The stop hands over (DESIGN §3 handover): the drain lets the commit finish, and
// its reply reaches the operator through either proxy — the stopping site's own too, which
// takes no new connection from the signal on but keeps those being served until the drain
// ends. It used to close them at once, with the rest of its serving, before the handover had
// even begun.
func TestGracefulStopKeepsServedConnections(t *testing.T) {
	s1, s2 := cluster(t, clusterOpts{db: true, failback: "manual"})
	setThrough(t, s1, "x", "1")
	setThrough(t, s1, "y", "1")
	waitFor(t, 5*time.Second, "site2's database to hold x=1 and y=1", func() bool {
		return kvValue(t, s2, "x") == "1" && kvValue(t, s2, "y") == "1"
	})

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
	if _, err := lock.Exec(`SELECT 1 FROM wire_kv WHERE k IN ('x', 'y') FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	type reply struct {
		got string
		err error
	}
	viaS1 := operatorOf(t, s1)
	servedBy(t, s2.proxy, "site1", 10*time.Second)
	viaS2, err := dialOperator(s2.proxy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(viaS2.close)
	r1, r2 := make(chan reply, 1), make(chan reply, 1)
	go func() { got, err := viaS1.do("SET x 2", 30*time.Second); r1 <- reply{got, err} }()
	go func() { got, err := viaS2.do("SET y 2", 30*time.Second); r2 <- reply{got, err} }()
	waitFor(t, 5*time.Second, "site1's two commits prepared locally", func() bool { return preparedCount(t, s1) >= 2 })

	// Not kill, which would wait for the exit (forcing it after 15 s) with the lock still held.
	s1.tandem.signal(t, syscall.SIGTERM)
	waitFor(t, 5*time.Second, "site1 to hand over", func() bool { return httpStatus(s1.admin, "/master") != 200 })
	time.Sleep(time.Second)
	_ = lock.Rollback()

	for name, r := range map[string]chan reply{"site1": r1, "site2": r2} {
		select {
		case r := <-r:
			if r.got != "OK site1" || r.err != nil {
				t.Errorf("the request in flight through %s's proxy at SIGTERM -> %q, %v; want OK site1", name, r.got, r.err)
			}
		case <-time.After(40 * time.Second):
			t.Fatalf("the request in flight through %s's proxy has no outcome after 40s", name)
		}
	}
	for _, s := range []*site{s1, s2} {
		waitFor(t, 5*time.Second, s.name+"'s database to hold x=2 and y=2", func() bool {
			return kvValue(t, s, "x") == "2" && kvValue(t, s, "y") == "2"
		})
	}
	if !s1.tandem.exited(15 * time.Second) {
		t.Error("site1's tandem did not exit after SIGTERM")
	}
	servedBy(t, s2.proxy, "site2", 10*time.Second)
}

// TestGracefulStopDeliversWrittenReply: SIGTERM on the master while its server's reply to an
// operator — written in full before the handover's drain ended — is still on its way through
// the stopping site's own proxy to an operator that reads it at its pace. The drain's end
// passes it on within drainEndBound (2 s, proxy.conn.endDrain), and the process's stop, which
// ends the proxy a moment after the drain (stopProxy, once the node is done), waits for that
// rather than resetting the connection with the reply half delivered.
func TestGracefulStopDeliversWrittenReply(t *testing.T) {
	s1, _ := cluster(t, clusterOpts{failback: "manual"})
	o := operatorOf(t, s1)
	const size = 1 << 20
	_ = o.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(o.conn, "SOURCE %d\n", size); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server writes its reply

	s1.tandem.signal(t, syscall.SIGTERM)
	// The operator reads at its pace: only once the node is done, and its proxy told to stop.
	waitFor(t, 10*time.Second, "site1's node to be done", func() bool {
		return strings.Contains(s1.tandem.out.String(), "gossip stopped")
	})
	time.Sleep(200 * time.Millisecond)
	line, err := o.r.ReadString('\n')
	if err != nil || line != fmt.Sprintf("DATA %d\n", size) {
		t.Fatalf("reply %q, %v; want DATA %d", line, err, size)
	}
	n, err := io.Copy(io.Discard, o.r)
	if n != size {
		t.Fatalf("the operator got %d of the %d bytes of the reply its server wrote before SIGTERM's drain ended (%v)", n, size, err)
	}
	if !s1.tandem.exited(15 * time.Second) {
		t.Error("site1's tandem did not exit after SIGTERM")
	}
}
