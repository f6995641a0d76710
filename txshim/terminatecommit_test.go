package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTerminateBehindWrite: writes sent with their Terminate right behind them in dual mode —
// an autocommit INSERT (simple, extended, extended without its Sync), an explicit transaction
// with its COMMIT (simple, extended, without Sync), an error before or after a write without
// Sync — are kept exactly as PostgreSQL keeps them, nothing is left prepared, and the session
// ends (e600d30: the backend now ends at the Terminate by itself).
func TestTerminateBehindWrite(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, "CREATE TABLE tbw (i int)")
	db := c.Open(t, c.Database())
	for i, qs := range [][]string{
		{"INSERT INTO tbw VALUES (1)"},
		{"ext:INSERT INTO tbw VALUES (1)"},
		{"BEGIN", "INSERT INTO tbw VALUES (1)", "COMMIT"},
		{"BEGIN", "INSERT INTO tbw VALUES (1)", "ext:COMMIT"},
		{"nosync:INSERT INTO tbw VALUES (1)"},
		{"BEGIN", "INSERT INTO tbw VALUES (1)", "nosync:COMMIT"},
		{"nosync:INSERT INTO tbw VALUES (1)", "nosync:SELECT 1/0"},
		{"nosync:SELECT 1/0", "nosync:INSERT INTO tbw VALUES (1)"},
	} {
		want := -1
		for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", c.Port()), s.Addr().String()} {
			c.Exec(t, "TRUNCATE tbw")
			r, nc := dialRawTCP(t, addr, c.Database(), 10*time.Second)
			for _, q := range qs {
				if strings.HasPrefix(q, "nosync:") {
					r.fe.Send(&pgproto3.Parse{Query: q[7:]})
					r.fe.Send(&pgproto3.Bind{})
					r.fe.Send(&pgproto3.Execute{})
					r.fe.Send(&pgproto3.Flush{})
					continue
				}
				if strings.HasPrefix(q, "ext:") {
					r.fe.Send(&pgproto3.Parse{Query: q[4:]})
					r.fe.Send(&pgproto3.Bind{})
					r.fe.Send(&pgproto3.Execute{})
					r.fe.Send(&pgproto3.Sync{})
					continue
				}
				r.fe.Send(&pgproto3.Query{String: q})
			}
			r.fe.Send(&pgproto3.Terminate{})
			r.fe.Flush()
			var got []string
			nc.SetDeadline(time.Now().Add(2 * time.Second))
			for {
				m, err := r.until('Z')
				got = append(got, m)
				if err != nil {
					got = append(got, err.Error())
					break
				}
			}
			nc.Close()
			start := time.Now()
			for s.Stats().SessionsActive != 0 {
				if time.Since(start) > 5*time.Second {
					t.Fatalf("%d %q: session still active", i, qs)
				}
				time.Sleep(20 * time.Millisecond)
			}
			var n int
			if err := db.QueryRow("SELECT count(*) FROM tbw").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if want < 0 {
				want = n
			} else if n != want {
				t.Errorf("%d %q via %s: %d rows, from PostgreSQL %d; replies %q", i, qs, addr, n, want, got)
			}
			if p := preparedCount(t, c); p != 0 {
				t.Errorf("%d %q via %s: %d prepared", i, qs, addr, p)
			}
		}
	}
}
