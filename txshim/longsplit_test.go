package txshim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// rle shortens a string of message types: repeats of one unit (such as "12C") as unit×count.
func rle(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		best, reps := 1, 1
		for u := 1; u <= 4 && i+u <= len(s); u++ {
			k := 1
			for i+(k+1)*u <= len(s) && s[i+k*u:i+(k+1)*u] == s[i:i+u] {
				k++
			}
			if k > 1 && k*u > best*reps {
				best, reps = u, k
			}
		}
		if reps > 1 {
			fmt.Fprintf(&b, "(%s)×%d", s[i:i+best], reps)
		} else {
			b.WriteString(s[i : i+best])
		}
		i += best * reps
	}
	return b.String()
}

// TestLongPipelineSplitCompare: a request of more than maxBatchItems messages, sent in parts,
// gets the replies PostgreSQL gives and leaves the rows it leaves.
func TestLongPipelineSplitCompare(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	longPipelineSplitCompare(t, c, startShim(t, c, Options{}, ModeSolo, 0))
}

// TestLongPipelineSplitCompareDual: the same in dual mode, each commit consulting the peer.
func TestLongPipelineSplitCompareDual(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	longPipelineSplitCompare(t, c, startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1))
}

func longPipelineSplitCompare(t *testing.T, c *pgtest.Cluster, s *testShim) {
	conn := s.connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE ls (i int)"); err != nil {
		t.Fatal(err)
	}
	type script struct {
		name  string
		stmts func(i int) string
		n     int
	}
	const n = 3000
	scripts := []script{
		{"inserts", func(i int) string { return fmt.Sprintf("INSERT INTO ls VALUES (%d)", i) }, n},
		{"fail-at-split", func(i int) string {
			if i == 2730 {
				return "SELECT 1/0"
			}
			return fmt.Sprintf("INSERT INTO ls VALUES (%d)", i)
		}, n},
		{"fail-after-split", func(i int) string {
			if i == 2900 {
				return "SELECT 1/0"
			}
			return fmt.Sprintf("INSERT INTO ls VALUES (%d)", i)
		}, n},
		{"reads-then-write", func(i int) string {
			if i == n-1 {
				return "INSERT INTO ls VALUES (1)"
			}
			return "SELECT 1"
		}, n},
		{"begin-commit", func(i int) string {
			switch i {
			case 0:
				return "BEGIN"
			case n - 1:
				return "COMMIT"
			}
			return fmt.Sprintf("INSERT INTO ls VALUES (%d)", i)
		}, n},
		{"commit-mid", func(i int) string {
			switch i {
			case 0:
				return "BEGIN"
			case 2730:
				return "COMMIT"
			}
			return fmt.Sprintf("INSERT INTO ls VALUES (%d)", i)
		}, n},
		{"commit-mid-fail", func(i int) string {
			switch i {
			case 0:
				return "BEGIN"
			case 2000:
				return "COMMIT"
			case 2900:
				return "SELECT 1/0"
			}
			return fmt.Sprintf("INSERT INTO ls VALUES (%d)", i)
		}, n},
	}
	run := func(addr string, sc script) string {
		r, nc := dialRawTCP(t, addr, c.Database(), 30*time.Second)
		defer nc.Close()
		fe := r.fe
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			for i := range sc.n {
				r.stmt(sc.stmts(i))
				if i%100 == 0 {
					fe.Flush()
				}
			}
			fe.SendSync(&pgproto3.Sync{})
			fe.Flush()
		}()
		got, st := r.ready()
		<-sent
		var rows int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ls").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "TRUNCATE ls"); err != nil {
			t.Fatal(err)
		}
		after := r.query("SELECT 1")
		return fmt.Sprintf("%s %c; %d rows; then %s", rle(got), st, rows, after)
	}
	for _, sc := range scripts {
		want := run(fmt.Sprintf("127.0.0.1:%d", c.Port()), sc)
		if got := run(s.Addr().String(), sc); got != want {
			t.Errorf("%s: through the shim %q; from PostgreSQL %q", sc.name, got, want)
		} else {
			t.Logf("%s: %q", sc.name, got)
		}
	}
}
