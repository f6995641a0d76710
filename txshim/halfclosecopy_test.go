package txshim

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestHalfClosedMidCopy: a client that shuts down its sending side (shutdown(SHUT_WR)) in the
// middle of a COPY FROM STDIN — between two messages or inside one — gets from PostgreSQL the
// COPY's error (08006, unexpected EOF) and the FATAL that ends the session (08P01), and no row
// is kept. Through the shim (solo) the client got nothing but the end of the connection: the
// backend's replies were buffered for the client and dropped when the backend ended, and a
// message cut short closed both connections at once.
func TestHalfClosedMidCopy(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	db := c.Open(t, c.Database())
	if _, err := db.Exec("CREATE TABLE hcc (k text, i int)"); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", c.Port())
	halfClosedCopies(t, addr, c.Database(), s.Addr().String(), c.Database(), func(name string) string {
		return countRows(t, db, name)
	})
	time.Sleep(200 * time.Millisecond)
	if n := s.Stats().SessionsActive; n != 0 {
		t.Errorf("%d sessions active after the half-closed clients' end, want 0", n)
	}
}

// TestHalfClosedMidCopyDual: the same in dual mode, where the shim runs the client's COPY in a
// transaction of its own it commits on both databases: neither keeps a row.
func TestHalfClosedMidCopyDual(t *testing.T) {
	t.Parallel()
	e := startAccEnv(t)
	o := startOracle(t, e)
	o.both(t, "CREATE TABLE hcc (k text, i int)")
	addr := fmt.Sprintf("127.0.0.1:%d", e.local.Port())
	halfClosedCopies(t, addr, "oracle", e.shim.Addr().String(), e.local.Database(), func(name string) string {
		return countRows(t, e.localDB, name) + "/" + countRows(t, e.peerDB, name)
	})
}

func countRows(t *testing.T, db *sql.DB, name string) string {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM hcc WHERE k = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(n)
}

// halfClosedCopies runs each script as a client that then half-closes, on PostgreSQL (direct,
// database directDB) and through the shim (shimAddr, shimDB), and compares the replies up to
// the end of the connection, and the rows the shim's databases keep (rows) with none.
func halfClosedCopies(t *testing.T, direct, directDB, shimAddr, shimDB string, rows func(name string) string) {
	row := func(r *rawSession, name string) {
		r.fe.Send(&pgproto3.CopyData{Data: []byte(name + "\t1\n")})
	}
	scripts := map[string]func(r *rawSession, name string){
		"copy": func(r *rawSession, name string) {
			r.simple("COPY hcc FROM STDIN")
			r.until('G')
			row(r, name)
			r.fe.Flush()
		},
		"copyext": func(r *rawSession, name string) {
			r.stmt("COPY hcc FROM STDIN")
			r.fe.Send(&pgproto3.Flush{})
			r.fe.Flush()
			r.until('G')
			row(r, name)
			r.fe.Flush()
		},
		"blockcopy": func(r *rawSession, name string) {
			r.simple("BEGIN")
			r.until('Z')
			r.simple("COPY hcc FROM STDIN")
			r.until('G')
			row(r, name)
			r.fe.Flush()
		},
		"copycut": func(r *rawSession, name string) {
			// A CopyData whose length says 100 bytes, of which 3 come.
			r.simple("COPY hcc FROM STDIN")
			r.until('G')
			row(r, name)
			r.fe.Flush()
			cut := []byte{'d', 0, 0, 0, 0, 'a', 'b', 'c'}
			binary.BigEndian.PutUint32(cut[1:], 104)
			r.conn.Write(cut)
		},
		"querycut": func(r *rawSession, name string) {
			// A Query answered, then a message cut short: PostgreSQL answers the Query first.
			r.simple(fmt.Sprintf("SELECT pg_sleep(0.2), '%s'", name))
			r.conn.Write([]byte{'Q', 0, 0, 0, 100, 'S'})
		},
	}
	run := func(addr, db, name string) string {
		r, nc := dialRawTCP(t, addr, db, 10*time.Second)
		defer nc.Close()
		scripts[name](r, name)
		nc.CloseWrite()
		out := r.toEnd()
		return out
	}
	for name := range scripts {
		want := run(direct, directDB, name)
		got := run(shimAddr, shimDB, name)
		if got != want {
			t.Errorf("%s: half-closed client through the shim got %q; from PostgreSQL %q", name, got, want)
		} else {
			t.Logf("%s: %q", name, got)
		}
		time.Sleep(300 * time.Millisecond)
		if n := rows(name); n != "0" && n != "0/0" {
			t.Errorf("%s: the shim's databases kept %s rows, want none", name, n)
		}
	}
}
