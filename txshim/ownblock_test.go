package txshim

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// ownStep is one message of a client's sequence: 'Q' a simple Query, 'E' Parse/Bind/Execute of
// sql on the unnamed statement, 'S' Sync, 'H' Flush, '|' the replies so far read before going
// on. In sql, %s stands for the statement that changes Tandem's objects.
type ownStep struct {
	typ byte
	sql string
}

// runOwnSteps sends steps to r and returns the replies, each request's up to its
// ReadyForQuery (after a Flush, up to CommandComplete or ErrorResponse).
func runOwnSteps(r *rawSession, steps []ownStep, stmt string) string {
	var out []string
	waitZ, waitFlush := 0, false
	read := func() {
		r.fe.Flush()
		for ; waitZ > 0; waitZ-- {
			out = append(out, r.replies())
		}
		if waitFlush {
			var b strings.Builder
			for {
				m, err := r.fe.Receive()
				if err != nil {
					r.t.Fatalf("after Flush, %q: %v", b.String(), err)
				}
				enc, _ := m.Encode(nil)
				b.WriteByte(enc[0])
				if e, ok := m.(*pgproto3.ErrorResponse); ok {
					b.WriteString("(" + e.Code + ")")
				}
				if enc[0] == 'C' || enc[0] == 'E' {
					break
				}
			}
			out = append(out, b.String())
			waitFlush = false
		}
	}
	for _, st := range steps {
		q := strings.ReplaceAll(st.sql, "%s", stmt)
		switch st.typ {
		case 'Q':
			r.fe.Send(&pgproto3.Query{String: q})
			waitZ++
		case 'E':
			r.stmt(q)
		case 'S':
			r.fe.SendSync(&pgproto3.Sync{})
			waitZ++
			waitFlush = false
		case 'H':
			r.fe.Send(&pgproto3.Flush{})
			waitFlush = true
		case '|':
			read()
		}
	}
	read()
	return strings.Join(out, " | ")
}

// TestOwnObjectWriteAnywhere: a statement changing Tandem's own objects was refused (42501) only
// where the shim walked the request anyway: inside a client's transaction block begun by an
// earlier request (simple or extended, pipelined or not, after a Flush), in a simple Query that
// also holds a statement that cannot run in a transaction block, and for statements the lexer
// takes for reads (LOCK, PREPARE … AS INSERT), the request went through as it was and the
// statement ran: a row written into tandem.ddl that way, committed, would make the peer run
// it. It is now refused wherever it comes, before it runs, the transaction aborting as for any
// error — the replies as PostgreSQL's with the statement replaced by one that fails there.
func TestOwnObjectWriteAnywhere(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	const fails = "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '42501'; END$$"
	Q := func(q string) ownStep { return ownStep{'Q', q} }
	E := func(q string) ownStep { return ownStep{'E', q} }
	S, H, W := ownStep{'S', ""}, ownStep{'H', ""}, ownStep{'|', ""}
	seqs := []struct {
		name  string
		steps []ownStep
	}{
		{"simple in a block", []ownStep{Q("BEGIN"), W, Q("%s"), W, Q("COMMIT")}},
		{"simple in a block, among others", []ownStep{Q("BEGIN; SELECT 1"), W, Q("SELECT 2; %s; SELECT 3"), W, Q("COMMIT")}},
		{"simple pipelined in a block", []ownStep{Q("BEGIN"), Q("%s"), Q("COMMIT")}},
		{"simple autocommit", []ownStep{Q("%s")}},
		{"simple with VACUUM after", []ownStep{Q("%s; VACUUM acct")}},
		{"simple with VACUUM before", []ownStep{Q("VACUUM acct; %s")}},
		{"simple with VACUUM in a block", []ownStep{Q("BEGIN"), W, Q("%s; VACUUM acct"), W, Q("COMMIT")}},
		{"extended in a block", []ownStep{E("BEGIN"), S, W, E("%s"), S, W, E("COMMIT"), S}},
		{"extended pipelined in a block", []ownStep{E("BEGIN"), S, E("%s"), S, E("COMMIT"), S}},
		{"extended pipelined autocommit", []ownStep{E("SELECT 1"), S, E("%s"), S, E("SELECT 2"), S}},
		{"extended autocommit after a Flush", []ownStep{E("SELECT 1"), H, W, E("%s"), S}},
		{"extended in a block after a Flush", []ownStep{E("BEGIN"), S, W, E("SELECT 1"), H, W, E("%s"), S, W, E("COMMIT"), S}},
		{"extended in a block before a Flush", []ownStep{E("BEGIN"), S, W, E("%s"), H, W, E("SELECT 1"), S, W, E("COMMIT"), S}},
		{"extended in a block begun in the request", []ownStep{E("BEGIN"), E("%s"), S, W, E("COMMIT"), S}},
	}
	stmts := []string{
		"INSERT INTO tandem.ddl (stmt) VALUES ('DROP TABLE acct')",
		"UPDATE tandem.state SET term = 9",
		"DELETE FROM tandem.state",
		"LOCK TABLE tandem.state",
		"PREPARE p AS INSERT INTO tandem.ddl (stmt) VALUES ('DROP TABLE acct')",
		"ALTER TABLE tandem.ddl ADD COLUMN z int",
	}
	db := c.Open(t, c.Database())
	state := func() string {
		var st string
		if err := db.QueryRow(`SELECT format('%s %s %s', (SELECT count(*) FROM tandem.ddl), (SELECT string_agg(term::text, ',') FROM tandem.state),
  (SELECT count(*) FROM pg_attribute WHERE attrelid = 'tandem.ddl'::regclass AND attname = 'z'))`).Scan(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	for _, seq := range seqs {
		for _, stmt := range stmts {
			name := fmt.Sprintf("%s: %s", seq.name, stmt)
			d, r := dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)
			want := runOwnSteps(d, seq.steps, fails)
			got := runOwnSteps(r, seq.steps, stmt)
			d.conn.Close()
			r.conn.Close()
			if got != want {
				t.Errorf("%s:\n got %s\nwant %s (PostgreSQL, the statement failing with 42501)", name, got, want)
			}
			if st := state(); st != "0 1 0" {
				t.Errorf("%s: tandem.ddl rows, tandem.state terms, column z: %s; want 0 1 0 (untouched)", name, st)
				c.Exec(t, "TRUNCATE tandem.ddl; ALTER TABLE tandem.ddl DROP COLUMN IF EXISTS z; DELETE FROM tandem.state; INSERT INTO tandem.state VALUES (1, 1, 'site1', true)")
			}
		}
	}
	// Reading Tandem's objects stays allowed, in a block too.
	got := runOwnSteps(dialRaw(t, s), []ownStep{Q("BEGIN"), W, Q("SELECT term FROM tandem.state"), W, E("SELECT count(*) FROM tandem.ddl"), S, W, Q("COMMIT")}, "")
	if want := `C(BEGIN) Z(T) | T D["1"] C(SELECT 1) Z(T) | 1 2 D["0"] C(SELECT 1) Z(T) | C(COMMIT) Z(I)`; got != want {
		t.Errorf("reads of Tandem's tables in a block: %s, want %s", got, want)
	}
}

// TestConcurrentIndexAfterFlush: CREATE INDEX CONCURRENTLY executed after a Flush that followed
// an Execute in the same request fails in PostgreSQL (25001: it cannot run within a pipeline,
// the implicit transaction the Execute began being still open), but the shim built the index:
// its own set_config query before it (the mark letting it past the DDL guard) ended that
// transaction. The shim now sends it as it is where PostgreSQL refuses it.
func TestConcurrentIndexAfterFlush(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	const cic = "CREATE INDEX CONCURRENTLY acct_bal ON acct (bal)"
	E := func(q string) ownStep { return ownStep{'E', q} }
	S, H, W := ownStep{'S', ""}, ownStep{'H', ""}, ownStep{'|', ""}
	db := c.Open(t, c.Database())
	for _, seq := range []struct {
		name  string
		steps []ownStep
	}{
		{"after an Execute and a Flush", []ownStep{E("SELECT 1"), H, W, E(cic), S, W, E("SELECT 2"), S}},
		{"after two Flushes", []ownStep{E("SELECT 1"), H, W, E("SELECT 2"), H, W, E(cic), S}},
		{"in a block", []ownStep{E("BEGIN"), S, W, E(cic), S, W, E("ROLLBACK"), S}},
		{"in a block, after a Flush", []ownStep{E("BEGIN"), S, W, E("SELECT 1"), H, W, E(cic), S, W, E("ROLLBACK"), S}},
	} {
		d, r := dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)
		want := runOwnSteps(d, seq.steps, "")
		got := runOwnSteps(r, seq.steps, "")
		d.conn.Close()
		r.conn.Close()
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s (PostgreSQL)", seq.name, got, want)
		}
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM pg_class WHERE relname = 'acct_bal'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: index acct_bal built, want none (PostgreSQL fails it)", seq.name)
			c.Exec(t, "DROP INDEX acct_bal")
		}
	}
	// Alone before its Sync, it is built (and recorded).
	r := dialRaw(t, s)
	if got := runOwnSteps(r, []ownStep{E("SELECT 1"), S, W, E(cic), S}, ""); got != `1 2 D["1"] C(SELECT 1) Z(I) | 1 2 C(CREATE INDEX) Z(I)` {
		t.Errorf("alone before its Sync: %s", got)
	}
}

// TestOwnObjectReadLock: LOCK … IN ACCESS SHARE MODE of a table of Tandem's, the lock a read of
// it takes, is not refused: pg_dump through the shim begins a transaction and locks each table
// it dumps so, Tandem's among them. Since own-object writes were refused in a client's block
// too (TestOwnObjectWriteAnywhere), pg_dump failed there with 42501. A LOCK in a stronger mode
// is still refused.
func TestOwnObjectReadLock(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	r := dialRaw(t, s)
	for _, q := range []struct{ sql, want string }{
		{"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "CZ"},
		{"LOCK TABLE tandem.state IN ACCESS SHARE MODE", "CZ"},
		{"LOCK TABLE ONLY tandem.ddl IN ROW SHARE MODE", "CZ"},
		{"COMMIT", "CZ"},
		{"BEGIN", "CZ"},
		{"LOCK TABLE tandem.state IN ACCESS EXCLUSIVE MODE", "E(42501)Z"},
		{"ROLLBACK", "CZ"},
	} {
		if got := r.query(q.sql); got != q.want {
			t.Errorf("%s: %s, want %s", q.sql, got, q.want)
		}
	}
	port := s.Addr().(*net.TCPAddr).Port
	out, err := exec.Command(pgBin(t, "pg_dump"), "--schema-only", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", pgtest.Superuser, "-d", c.Database()).CombinedOutput()
	if err != nil {
		t.Errorf("pg_dump through the shim: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "CREATE TABLE tandem.ddl") {
		t.Errorf("pg_dump through the shim dumped no tandem.ddl:\n%s", out)
	}
}
