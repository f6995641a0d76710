package txshim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// TestHalfClosedClientWrites: a client that sends writes (a COPY FROM STDIN, an INSERT, a
// transaction block) and shuts down its sending side gets the same replies and leaves the same
// rows through the shim as from PostgreSQL itself.
func TestHalfClosedClientWrites(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	halfClosedWrites(t, c, s, "")
}

// TestHalfClosedClientWritesUnix: the same with the shim's backend on PostgreSQL's Unix socket.
func TestHalfClosedClientWritesUnix(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShimDSN(t, c, c.SocketDSN(c.Database()), Options{}, ModeSolo, 0)
	halfClosedWrites(t, c, s, "")
}

// halfClosedWrites runs each script (only, when not "") as a client that then half-closes, on
// PostgreSQL and through s, and compares the replies and rows.
func halfClosedWrites(t *testing.T, c *pgtest.Cluster, s *testShim, only string) {
	conn := s.connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE hw (k text, i int)"); err != nil {
		t.Fatal(err)
	}
	scripts := map[string]func(r *rawSession){
		"copy": func(r *rawSession) {
			r.simple("COPY hw FROM STDIN")
			r.until('G')
			r.fe.Send(&pgproto3.CopyData{Data: []byte("copy\t1\n")})
			r.fe.Send(&pgproto3.CopyDone{})
			r.fe.Flush()
		},
		"copyext": func(r *rawSession) {
			r.stmt("COPY hw FROM STDIN")
			r.fe.Send(&pgproto3.Flush{})
			r.fe.Flush()
			r.until('G')
			r.fe.Send(&pgproto3.CopyData{Data: []byte("copyext\t1\n")})
			r.fe.Send(&pgproto3.CopyDone{})
			r.fe.SendSync(&pgproto3.Sync{})
			r.fe.Flush()
		},
		"copynodone": func(r *rawSession) {
			r.simple("COPY hw FROM STDIN")
			r.until('G')
			r.fe.Send(&pgproto3.CopyData{Data: []byte("copynodone\t1\n")})
			r.fe.Flush()
		},
		"copyahead": func(r *rawSession) {
			r.fe.Send(&pgproto3.Query{String: "COPY hw FROM STDIN"})
			r.fe.Send(&pgproto3.CopyData{Data: []byte("copyahead\t1\n")})
			r.fe.Send(&pgproto3.CopyDone{})
			r.fe.Flush()
		},
		"blockcopy": func(r *rawSession) {
			r.simple("BEGIN")
			r.until('Z')
			r.simple("COPY hw FROM STDIN")
			r.until('G')
			r.fe.Send(&pgproto3.CopyData{Data: []byte("blockcopy\t1\n")})
			r.fe.Send(&pgproto3.CopyDone{})
			r.simple("COMMIT")
		},
		"insert": func(r *rawSession) { r.simple("INSERT INTO hw VALUES ('insert', 1)") },
		"insertext": func(r *rawSession) {
			r.pipeline("INSERT INTO hw VALUES ('insertext', 1)")
		},
		"block":     func(r *rawSession) { r.simple("BEGIN", "INSERT INTO hw VALUES ('block', 1)", "COMMIT") },
		"blockopen": func(r *rawSession) { r.simple("BEGIN", "INSERT INTO hw VALUES ('blockopen', 1)") },
		"twoq": func(r *rawSession) {
			r.simple("BEGIN")
			r.simple("INSERT INTO hw VALUES ('twoq', 1)")
			r.simple("COMMIT")
		},
	}
	run := func(addr, name string) string {
		r, nc := dialRawTCP(t, addr, c.Database(), 10*time.Second)
		defer nc.Close()
		scripts[name](r)
		nc.CloseWrite()
		out := r.toEnd()
		time.Sleep(300 * time.Millisecond)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM hw WHERE k = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "DELETE FROM hw"); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s; %d rows", out, n)
	}
	for name := range scripts {
		if (only == "") == (name == "copynodone") || only != "" && name != only {
			continue
		}
		want := run(fmt.Sprintf("127.0.0.1:%d", c.Port()), name)
		if got := run(s.Addr().String(), name); got != want {
			t.Errorf("%s: half-closed client through the shim got %q; from PostgreSQL %q", name, got, want)
		} else {
			t.Logf("%s: %q", name, got)
		}
	}
	if n := s.Stats().SessionsActive; n != 1 {
		t.Errorf("%d sessions active after the half-closed clients' end, want 0", n)
	}
}
