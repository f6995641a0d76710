package txshim

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// fillSlots opens direct connections to c until PostgreSQL refuses one with 53300; they are
// closed by the returned function (and when t ends).
func fillSlots(t *testing.T, c *pgtest.Cluster) (release func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var open []*pgx.Conn
	for len(open) < 200 {
		conn, err := pgx.Connect(ctx, c.DSN(c.Database()))
		if err != nil {
			if pgCode(err) != "53300" {
				t.Fatalf("direct connection %d: %v", len(open)+1, err)
			}
			break
		}
		open = append(open, conn)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		for _, conn := range open {
			conn.Close(context.Background())
		}
	}
	t.Cleanup(release)
	t.Logf("%d direct connections fill %s", len(open), c.Database())
	return release
}

// connEnv is startAccEnv with connection limits on the clusters; the test's own handles keep
// no idle connection, which would take a slot.
func connEnv(t *testing.T, local, peer []pgtest.Option) *accEnv {
	t.Helper()
	e := startAccEnvWith(t, local, peer)
	e.localDB.SetMaxIdleConns(0)
	e.peerDB.SetMaxIdleConns(0)
	return e
}

// TestPeerSlotsFull: with every connection slot of the peer database taken by its own site's
// clients before the Shipper dialled its apply connections, a write through the shim commits
// (solo), neither erring nor hanging past commit_timeout.
func TestPeerSlotsFull(t *testing.T) {
	t.Parallel()
	e := connEnv(t, nil, []pgtest.Option{pgtest.WithSetting("max_connections", "20")})
	c := e.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Exec(ctx, "CREATE TABLE kv (k int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	e.ship.pool.closeIdle(ctx)
	e.ship.opPool.closeIdle(ctx)
	release := fillSlots(t, e.peer)
	for i := range 3 {
		start := time.Now()
		_, err := c.Exec(ctx, "INSERT INTO kv VALUES ($1, 'x')", i)
		if took := time.Since(start); err != nil || took > 5*time.Second {
			t.Errorf("insert %d with the peer's slots full: %v after %v", i, err, took)
		}
	}
	if st := e.shim.Stats(); st.CommitsSolo == 0 {
		t.Errorf("no commit went solo with the peer's slots full: %+v", st)
	}
	release()
	if _, err := c.Exec(ctx, "INSERT INTO kv VALUES (100, 'y')"); err != nil {
		t.Errorf("insert after the peer's slots freed: %v", err)
	}
	if err := e.ship.Err(); err != nil {
		t.Errorf("shipping stopped: %v", err)
	}
}

// TestLocalSlotsFull: with every connection slot of the local database taken by direct
// clients, a new session through the shim gets PostgreSQL's 53300, and sessions already open
// still commit on both databases (a dual commit needs no further local connection).
func TestLocalSlotsFull(t *testing.T) {
	t.Parallel()
	e := connEnv(t, []pgtest.Option{pgtest.WithSetting("max_connections", "20")}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := e.connect(t)
	if _, err := c.Exec(ctx, "CREATE TABLE kv (k int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "INSERT INTO kv VALUES (-1, 'warm')"); err != nil {
		t.Fatal(err)
	}
	c2 := e.connect(t)
	if _, err := c2.Exec(ctx, "BEGIN; INSERT INTO kv VALUES (-2, 'open')"); err != nil {
		t.Fatal(err)
	}
	before := e.shim.Stats()
	release := fillSlots(t, e.local)
	_, err := pgx.Connect(ctx, e.dsn())
	t.Logf("new session with the local database full: %v", err)
	if pgCode(err) != "53300" {
		t.Errorf("new session with the local database full: want 53300, got %v", err)
	}
	for i := range 3 {
		start := time.Now()
		_, err := c.Exec(ctx, "INSERT INTO kv VALUES ($1, 'x')", i)
		if took := time.Since(start); err != nil || took > 5*time.Second {
			t.Errorf("insert %d with the local database full: %v after %v", i, err, took)
		}
	}
	if _, err := c2.Exec(ctx, "COMMIT"); err != nil {
		t.Errorf("commit with the local database full: %v", err)
	}
	// Wait past a resolver / catalog / sequence period with the slots full.
	time.Sleep(3 * time.Second)
	if _, err := c.Exec(ctx, "UPDATE kv SET v = 'z' WHERE k = 0"); err != nil {
		t.Errorf("update with the local database full: %v", err)
	}
	if _, err := c.Exec(ctx, "SELECT now()"); err != nil {
		t.Errorf("select with the local database full: %v", err)
	}
	if err := e.ship.Err(); err != nil {
		t.Errorf("shipping stopped: %v", err)
	}
	release()
	e.settle(t, before)
}

// TestSessionsFitDatabaseStartedDown: a shim whose Serve starts while the local database is
// still down (both started at boot, the database slower) fits its session cap once the
// database answers: with max_connections = 20, clients through the shim still leave the
// database room for the sidecar's own connections. The cap was read once, at Serve's start,
// and a database that did not answer then left it at 256 for good.
func TestSessionsFitDatabaseStartedDown(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.WithSetting("max_connections", "20"))
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	s := startShim(t, c, Options{}, ModeSolo, 0)
	time.Sleep(500 * time.Millisecond) // Serve has tried the database by now
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var open []*pgx.Conn
	defer func() {
		for _, conn := range open {
			conn.Close(context.Background())
		}
	}()
	for len(open) < 25 {
		conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser))
		if err != nil {
			t.Logf("session %d: %v", len(open)+1, err)
			break
		}
		open = append(open, conn)
	}
	if len(open) > 20-3-ownConnections {
		t.Errorf("%d sessions taken with max_connections = 20", len(open))
	}
	direct, err := pgx.Connect(ctx, c.DSN(c.Database()))
	if err != nil {
		t.Fatalf("with every session taken, the database refused the sidecar's own connection: %v", err)
	}
	direct.Close(ctx)
}

// TestFitWaitBounded: while the local database is silent (it accepts connections and never
// answers: its host stalled, or a firewall that drops replies after the handshake) and the
// session cap is still to be fitted (fitIfPending), the clients that wait for the fitting are
// bounded as every other connection in startup is: a flood of startup packets (no
// authentication needed to get there) must not hold more connections than the session slots
// and the startup bound allow.
func TestFitWaitBounded(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	cfg := config.TxShim{Listen: "127.0.0.1:0", LocalDSN: "postgres://postgres@" + silent.Addr().String() + "/db?sslmode=disable",
		PeerDown: config.PeerDownContinue, MaxMessage: 1 << 20, CommitTimeout: 5 * time.Second}
	s, err := New(cfg, Options{Site: "site1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeSolo, 0)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	time.Sleep(5500 * time.Millisecond) // Serve's own asking has timed out: it accepts
	const n = 700
	bound := 256 + maxStartups(256) // the default cap, not lowered (the database never answers)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": "postgres", "database": "db"}}).Encode(nil)
	for range n {
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(startup); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * time.Second)
	open := 0
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		buf := make([]byte, 4096)
		_, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			open++ // nothing said yet, not closed: the shim holds it
		}
	}
	t.Logf("%d of %d clients held by the shim, bound %d", open, n, bound)
	if open > bound {
		t.Errorf("%d of %d clients held by the shim while it asks a silent database, more than the %d sessions and startups allowed", open, n, bound)
	}
}
