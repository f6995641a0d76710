package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestTerminateBehindSlowQueryConnCheck: a client that sends a slow Query and its Terminate
// together, keeping its connection open, gets the Query's replies from PostgreSQL even with
// client_connection_check_interval set: the backend sees its client's end only at a close.
func TestTerminateBehindSlowQueryConnCheck(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	run := func(addr string) string {
		r, nc := dialRawParams(t, "tcp", addr, 20*time.Second, checkParams(c))
		defer nc.Close()
		r.fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(1), 42"})
		r.fe.Send(&pgproto3.Terminate{})
		r.fe.Flush()
		got, err := r.until('Z')
		return fmt.Sprintf("%s %v", got, err)
	}
	want := run(fmt.Sprintf("127.0.0.1:%d", c.Port()))
	if got := run(s.Addr().String()); got != want {
		t.Errorf("through the shim %q; from PostgreSQL %q", got, want)
	}
}

// TestTerminatePipelinedCopy: a Terminate sent right behind a COPY FROM STDIN, before its
// CopyInResponse (in an implicit transaction and in an open one), and behind writes of an open
// transaction: the session ends, and nothing is kept.
func TestTerminatePipelinedCopy(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	db := c.Open(t, c.Database())
	if _, err := db.Exec("CREATE TABLE tpc (i int)"); err != nil {
		t.Fatal(err)
	}
	for _, qs := range [][]string{
		{"COPY tpc FROM STDIN"},
		{"ext:COPY tpc FROM STDIN"},
		{"BEGIN", "ext:COPY tpc FROM STDIN"},
		{"BEGIN", "COPY tpc FROM STDIN"},
		{"BEGIN", "INSERT INTO tpc VALUES (1)"},
		{"BEGIN", "INSERT INTO tpc VALUES (1)", "SELECT pg_sleep(0.5)"},
	} {
		r, nc := dialRawTCP(t, s.Addr().String(), c.Database(), 10*time.Second)
		for _, q := range qs {
			if e, ok := strings.CutPrefix(q, "ext:"); ok {
				r.fe.Send(&pgproto3.Parse{Query: e})
				r.fe.Send(&pgproto3.Bind{})
				r.fe.Send(&pgproto3.Execute{})
				r.fe.Send(&pgproto3.Sync{})
				continue
			}
			r.fe.Send(&pgproto3.Query{String: q})
		}
		r.fe.Send(&pgproto3.Terminate{})
		r.fe.Flush()
		start := time.Now()
		for s.Stats().SessionsActive != 0 {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("%q: the session whose client sent Terminate still active after %v", qs, time.Since(start).Round(time.Second))
			}
			time.Sleep(50 * time.Millisecond)
		}
		nc.Close()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM tpc").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%q: %d rows kept after a Terminate (%v), want none", qs, n, err)
		}
	}
}

// TestTerminateThenCloseSlowQuery: a client that sends a slow query and its Terminate and then
// closes its connection: a backend with client_connection_check_interval sees the end, as it
// would its own client's, and the session and its backend end soon, not at the query's end.
func TestTerminateThenCloseSlowQuery(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	db := c.Open(t, c.Database())
	r, nc := dialRawParams(t, "tcp", s.Addr().String(), 20*time.Second, checkParams(c))
	defer nc.Close()
	r.fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(30) AS terminate_then_close"})
	r.fe.Send(&pgproto3.Terminate{})
	r.fe.Flush()
	time.Sleep(300 * time.Millisecond)
	nc.Close()
	start := time.Now()
	for {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%terminate_then_close%' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 && s.Stats().SessionsActive == 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%v after the client's close: %d backends, %d sessions still there, want none", time.Since(start).Round(time.Second), n, s.Stats().SessionsActive)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkParams are the start-up parameters of a superuser session on c's database whose
// backend checks its client's connection every 100 ms (client_connection_check_interval).
func checkParams(c *pgtest.Cluster) map[string]string {
	return map[string]string{"user": pgtest.Superuser, "database": c.Database(), "options": "-c client_connection_check_interval=100"}
}
