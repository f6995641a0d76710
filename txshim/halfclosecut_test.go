package txshim

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestHalfClosedCutShapes: a client whose input ends inside a message (a1e752d: the end is
// taken as one between messages) in the states around a commit — a transaction block whose
// COMMIT is cut, a block committed just before the cut, an extended request without its
// Sync, one after a Flush, a pipeline — gets PostgreSQL's replies, and keeps exactly the rows
// PostgreSQL keeps: nothing commits because the input ended. Solo and dual. (Not here: an
// Execute of COMMIT in a transaction block, with no Sync after it, which PostgreSQL commits at
// once and the shim, holding the request for its Sync, never runs.)
func TestHalfClosedCutShapes(t *testing.T) {
	t.Parallel()
	t.Run("solo", func(t *testing.T) {
		t.Parallel()
		c := testCluster(t)
		s := startShim(t, c, Options{}, ModeSolo, 0)
		db := c.Open(t, c.Database())
		if _, err := db.Exec("CREATE DATABASE oracle"); err != nil {
			t.Fatal(err)
		}
		odb := c.Open(t, "oracle")
		for _, d := range []*sql.DB{db, odb} {
			if _, err := d.Exec("CREATE TABLE hcx (k text)"); err != nil {
				t.Fatal(err)
			}
		}
		halfClosedCuts(t, fmt.Sprintf("127.0.0.1:%d", c.Port()), "oracle", s.Addr().String(), c.Database(), odb, db)
	})
	t.Run("dual", func(t *testing.T) {
		t.Parallel()
		e := startAccEnv(t)
		o := startOracle(t, e)
		o.both(t, "CREATE TABLE hcx (k text)")
		halfClosedCuts(t, fmt.Sprintf("127.0.0.1:%d", e.local.Port()), "oracle", e.shim.Addr().String(), e.local.Database(), o.db, e.localDB, e.peerDB)
	})
}

func halfClosedCuts(t *testing.T, direct, directDB, shimAddr, shimDB string, directRows *sql.DB, shimRows ...*sql.DB) {
	cut := func(r *rawSession, typ byte) {
		b := []byte{typ, 0, 0, 0, 100, 'S', 'E', 'L'}
		r.conn.Write(b)
	}
	ins := func(name string) string { return fmt.Sprintf("INSERT INTO hcx VALUES ('%s')", name) }
	scripts := map[string]func(r *rawSession, name string){
		"commitcut": func(r *rawSession, name string) {
			r.simple("BEGIN", ins(name))
			r.until('Z')
			// COMMIT, cut short.
			b := []byte{'Q', 0, 0, 0, 0, 'C', 'O', 'M', 'M'}
			binary.BigEndian.PutUint32(b[1:], uint32(4+len("COMMIT")+1))
			r.conn.Write(b)
		},
		"committhencut": func(r *rawSession, name string) {
			r.simple("BEGIN", ins(name))
			r.until('Z')
			r.fe.Send(&pgproto3.Query{String: "COMMIT"})
			r.fe.Flush()
			cut(r, 'Q')
		},
		"blockcut": func(r *rawSession, name string) {
			r.simple("BEGIN")
			r.until('Z')
			r.simple(ins(name))
			cut(r, 'Q')
		},
		"extnosync": func(r *rawSession, name string) {
			r.stmt(ins(name))
			r.fe.Flush()
			cut(r, 'P')
		},
		"extflush": func(r *rawSession, name string) {
			r.stmt(ins(name))
			r.flush('C')
			cut(r, 'P')
		},
		"longpipecut": func(r *rawSession, name string) {
			// Past maxBatchItems: the shim sends the request in parts before its Sync.
			for range 3000 {
				r.stmt(ins(name))
			}
			r.fe.Flush()
			cut(r, 'P')
		},
		"longpipesynced": func(r *rawSession, name string) {
			for range 3000 {
				r.stmt(ins(name))
			}
			r.fe.SendSync(&pgproto3.Sync{})
			for range 3000 {
				r.stmt(ins(name + "2"))
			}
			r.fe.Flush()
			cut(r, 'S')
		},
		"pipeline": func(r *rawSession, name string) {
			r.pipeline(ins(name))
			r.stmt(ins(name + "2"))
			r.fe.Flush()
			cut(r, 'P')
		},
	}
	run := func(addr, db, name string) string {
		r, nc := dialRawTCP(t, addr, db, 10*time.Second)
		defer nc.Close()
		scripts[name](r, name)
		nc.CloseWrite()
		out := r.toEnd()
		if strings.HasPrefix(name, "longpipe") {
			// Replies to messages with no Sync after them come as buffers fill, PostgreSQL's
			// (8 KiB) or the shim's parts: only those up to the last ReadyForQuery compare.
			out = out[:strings.LastIndexByte(out, 'Z')+1] + "…"
		}
		return runLength(out)
	}
	count := func(db *sql.DB, name string) int {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM hcx WHERE k LIKE $1 || '%'", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for name := range scripts {
		want := run(direct, directDB, name)
		got := run(shimAddr, shimDB, name)
		if got != want {
			t.Errorf("%s: half-closed client through the shim got %q; from PostgreSQL %q", name, got, want)
		}
		time.Sleep(300 * time.Millisecond)
		wantN := count(directRows, name)
		for i, db := range shimRows {
			if n := count(db, name); n != wantN {
				t.Errorf("%s: database %d of the shim keeps %d rows; PostgreSQL %d", name, i, n, wantN)
			}
		}
		t.Logf("%s: %q, %d rows", name, want, wantN)
	}
}

// runLength writes each run of a repeated part of replies once with its count: "12C×3000".
func runLength(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		best, n := 1, 1
		for k := 1; k <= 4 && k <= len(s); k++ {
			m := 1
			for (m+1)*k <= len(s) && s[m*k:(m+1)*k] == s[:k] {
				m++
			}
			if m > 1 && m*k > best*n {
				best, n = k, m
			}
		}
		b.WriteString(s[:best])
		if n > 1 {
			fmt.Fprintf(&b, "×%d", n)
		}
		s = s[best*n:]
	}
	return b.String()
}
