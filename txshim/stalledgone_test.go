package txshim

import (
	"database/sql"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// testStall is the stall tests' clientWriter time scale (Options.clientStall): clientStall's
// 10 s, its rechecks and clientTakes would keep each of them 20 s or more.
const testStall = 2 * time.Second

// TestStalledClientBackendTerminated: a client that stops reading (its socket's receive buffer
// full) while its query's rows come, and whose backend is then ended (pg_terminate_backend),
// loses its session within a bounded time, as its connection to PostgreSQL itself would end:
// the shim's session, blocked writing the rows to the client, lived on as long as the client's
// connection, holding its place in max_sessions. A client that only pauses, its backend alive,
// keeps its session (alive).
func TestStalledClientBackendTerminated(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	db := c.Open(t, c.Database())
	for _, shape := range []string{"simple", "extended", "unix", "alive"} {
		t.Run(shape, func(t *testing.T) {
			t.Parallel()
			dsn := c.DSN(c.Database())
			if shape == "unix" {
				dsn = c.SocketDSN(c.Database())
			}
			s := startShimDSN(t, c, dsn, Options{MaxSessions: 2, clientStall: testStall}, ModeSolo, 0)
			stalledTerminated(t, c, s, db, shape)
		})
	}
}

// stalledTerminated runs one client that stops reading through s, ends its backend, and
// waits for its session to end.
func stalledTerminated(t *testing.T, c *pgtest.Cluster, s *testShim, db *sql.DB, shape string) {
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if shape != "alive" {
		// Filled sooner. Not for a client that reads again: its window would not open by
		// a segment's size, and the shim's kernel would send only at its probes, backed off.
		nc.(*net.TCPConn).SetReadBuffer(4 << 10)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(nc, nc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": pgtest.Superuser, "database": c.Database()}})
	fe.Flush()
	r := &rawSession{t: t, conn: nc, fe: fe}
	if got, err := r.until('Z'); err != nil {
		t.Fatalf("startup: %q %v", got, err)
	}
	mark := "stalled_" + shape
	q := fmt.Sprintf("SELECT repeat('x', 1000) AS %s FROM generate_series(1, 10000000)", mark)
	if shape != "extended" {
		r.simple(q)
	} else {
		r.pipeline(q)
	}
	// The client reads no more: the backend blocks on its writes once every buffer between
	// them is full.
	var pid int
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := db.QueryRow(`SELECT pid FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND wait_event = 'ClientWrite' AND pid <> pg_backend_pid()`, mark).Scan(&pid)
		if err == nil {
			break
		}
		if err != sql.ErrNoRows || time.Now().After(deadline) {
			t.Fatalf("backend blocked on the stalled client: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := s.Stats().SessionsActive; n != 1 {
		t.Fatalf("%d sessions active, want the stalled client's", n)
	}
	if shape == "alive" {
		// Its backend lives: the session outlasts the checks and the client, reading again,
		// gets its rows.
		time.Sleep(testStall + testStall/2 + 2*time.Second)
		if n := s.Stats().SessionsActive; n != 1 {
			t.Fatalf("%d sessions active after the stalled client's wait, want its own", n)
		}
		readsRowsAgain(t, nc, fe)
		return
	}
	terminatedSessionEnds(t, s, db, pid)
}

// terminatedSessionEnds ends backend pid (db: the local database) of the only session of s, a
// stalled client's, and waits (at most 30 s) until the session is gone.
func terminatedSessionEnds(t *testing.T, s *testShim, db *sql.DB, pid int) {
	t.Helper()
	if _, err := db.Exec("SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for s.Stats().SessionsActive != 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("the stalled client's session still active %v after its backend's end", time.Since(start).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("session ended %v after its backend's end", time.Since(start).Round(100*time.Millisecond))
}

// readsRowsAgain reads, on a stalled client's connection nc, the rows its query still has
// coming (20 000), as a client that only paused does.
func readsRowsAgain(t *testing.T, nc net.Conn, fe *pgproto3.Frontend) {
	t.Helper()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	for i := range 20000 {
		if m, err := fe.Receive(); err != nil {
			t.Fatalf("row %d after the wait: %v", i, err)
		} else if _, ok := m.(*pgproto3.DataRow); !ok && i > 0 {
			t.Fatalf("message %d after the wait: %T", i, m)
		}
	}
}
