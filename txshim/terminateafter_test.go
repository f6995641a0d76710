package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTerminateBehindQuery: a client that sends a Query and its Terminate together gets the
// Query's replies before the end, as from PostgreSQL, which answers every message before a
// Terminate.
func TestTerminateBehindQuery(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	run := func(addr string) string {
		r, nc := dialRawTCP(t, addr, c.Database(), 10*time.Second)
		defer nc.Close()
		r.fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(0.2), 42"})
		r.pipeline("SELECT 1")
		r.fe.Send(&pgproto3.Terminate{})
		r.fe.Flush()
		got, err := r.until('Z')
		got2, err2 := r.until('Z')
		return fmt.Sprintf("%s %v, %s %v", got, err, got2, err2)
	}
	want := run(fmt.Sprintf("127.0.0.1:%d", c.Port()))
	if got := run(s.Addr().String()); got != want {
		t.Errorf("through the shim %q; from PostgreSQL %q", got, want)
	}
	// A Terminate in the middle of a COPY FROM STDIN, which PostgreSQL fails and then waits
	// on: the session still ends.
	db := c.Open(t, c.Database())
	if _, err := db.Exec("CREATE TABLE tbq (i int)"); err != nil {
		t.Fatal(err)
	}
	r, nc := dialRawTCP(t, s.Addr().String(), c.Database(), 10*time.Second)
	defer nc.Close()
	r.simple("COPY tbq FROM STDIN")
	r.until('G')
	r.fe.Send(&pgproto3.CopyData{Data: []byte("1\n")})
	r.fe.Send(&pgproto3.Terminate{})
	r.fe.Flush()
	start := time.Now()
	for s.Stats().SessionsActive != 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the session whose client sent Terminate mid-COPY still active after %v", time.Since(start).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM tbq").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows kept after a Terminate mid-COPY (%v), want none", n, err)
	}
}
