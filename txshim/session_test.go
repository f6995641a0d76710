package txshim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/lib/pq"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// needTool skips the test when the client program name is missing, or fails it in CI, which
// installs PostgreSQL's clients (.ci/run).
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (in CI a missing PostgreSQL client is a failure)", name)
		}
		t.Skipf("%s not installed", name)
	}
}

func runCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	needTool(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestPsqlScript(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	script := `
CREATE TABLE items (id int PRIMARY KEY, name text, note text);
INSERT INTO items VALUES (1, 'a;b', $$semi;colon$$), (2, 'it''s', E'tab\tx');
BEGIN;
INSERT INTO items VALUES (3, 'three', NULL);
SAVEPOINT sp;
INSERT INTO items VALUES (4, 'rolled back', NULL);
ROLLBACK TO SAVEPOINT sp;
INSERT INTO items VALUES (5, 'five', NULL);
COMMIT;
COPY items (id, name, note) FROM STDIN;
10	ten	x
11	eleven	y
\.
/* comment; with semicolon */ SELECT count(*) AS n FROM items \gset
\echo count=:n
COPY items TO STDOUT;
ALTER TABLE items ADD COLUMN extra int DEFAULT 7;
INSERT INTO items (id, name) VALUES (20, 'x'); INSERT INTO items (id, name) VALUES (21, 'y');
`
	path := filepath.Join(t.TempDir(), "script.sql")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runCmd(t, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", s.dsn(pgtest.Superuser), "-f", path)
	if !strings.Contains(out, "count=6") || !strings.Contains(out, "10\tten\tx") {
		t.Fatalf("psql output:\n%s", out)
	}
	var n, extra int
	db := c.Open(t, c.Database())
	if err := db.QueryRow("SELECT count(*), sum(extra) FROM items").Scan(&n, &extra); err != nil {
		t.Fatal(err)
	}
	if n != 8 || extra != 56 {
		t.Fatalf("items: %d rows, extra sum %d; want 8, 56", n, extra)
	}
	if err := db.QueryRow("SELECT count(*) FROM items WHERE id = 4").Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back savepoint row present: %d %v", n, err)
	}
}

func TestDrivers(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	c.Exec(t, "CREATE TABLE kv (k int PRIMARY KEY, v text)")
	ctx := context.Background()

	t.Run("lib/pq", func(t *testing.T) {
		db, err := sql.Open("postgres", s.dsn(pgtest.Superuser))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec("INSERT INTO kv VALUES (1, 'simple')"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("INSERT INTO kv VALUES ($1, $2)", 2, "extended"); err != nil {
			t.Fatal(err)
		}
		tx, err := db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec("INSERT INTO kv VALUES ($1, $2)", 3, "tx"); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.QueryRow("SELECT v FROM kv WHERE k = $1", 2).Scan(&v); err != nil || v != "extended" {
			t.Fatalf("read back %q %v", v, err)
		}
	})
	t.Run("pgx", func(t *testing.T) {
		conn := s.connect(t)
		b := &pgx.Batch{}
		b.Queue("INSERT INTO kv VALUES ($1, $2)", 10, "batch")
		b.Queue("SELECT v FROM kv WHERE k = $1", 10)
		b.Queue("UPDATE kv SET v = v || '!' WHERE k = $1", 10)
		br := conn.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := br.QueryRow().Scan(&v); err != nil || v != "batch" {
			t.Fatalf("batch read %q %v", v, err)
		}
		if _, err := br.Exec(); err != nil {
			t.Fatal(err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		rows := [][]any{}
		for i := 100; i < 1100; i++ {
			rows = append(rows, []any{i, fmt.Sprint("copy", i)})
		}
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"kv"}, []string{"k", "v"}, pgx.CopyFromRows(rows))
		if err != nil || n != 1000 {
			t.Fatalf("CopyFrom %d %v", n, err)
		}
		// A failing COPY rolls back and the session goes on.
		_, err = conn.CopyFrom(ctx, pgx.Identifier{"kv"}, []string{"k", "v"}, pgx.CopyFromRows([][]any{{5000, "a"}, {100, "dup"}}))
		if pgCode(err) != "23505" {
			t.Fatalf("duplicate COPY: %v", err)
		}
		var cnt int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM kv WHERE k >= 100", pgx.QueryExecModeSimpleProtocol).Scan(&cnt); err != nil || cnt != 1000 {
			t.Fatalf("count %d %v", cnt, err)
		}
		// Pipelined reads with several Syncs.
		p := conn.PgConn().StartPipeline(ctx)
		for i := 0; i < 3; i++ {
			p.SendQueryParams("SELECT $1::int", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil, nil)
			p.Sync()
		}
		for i := 0; i < 3; i++ {
			res, err := p.GetResults()
			if err != nil {
				t.Fatal(err)
			}
			rr, ok := res.(*pgconn.ResultReader)
			if !ok {
				t.Fatalf("pipeline result %d is %T", i, res)
			}
			r := rr.Read()
			if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != fmt.Sprint(i) {
				t.Fatalf("pipeline result %d: %v %q", i, r.Err, r.Rows)
			}
			if res, err = p.GetResults(); err != nil {
				t.Fatal(err)
			} else if _, ok := res.(*pgconn.PipelineSync); !ok {
				t.Fatalf("want sync, got %T", res)
			}
		}
		if err := p.Close(); err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		var got string
		if err := conn.QueryRow(ctx, "SELECT v FROM kv WHERE k = 10").Scan(&got); err != nil || got != "batch!" {
			t.Fatalf("after pipeline %q %v", got, err)
		}
	})
}

func TestPgbench(t *testing.T) {
	t.Parallel()
	needTool(t, "pgbench")
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	dsn := s.dsn(pgtest.Superuser)
	runCmd(t, "pgbench", "-i", "-s", "1", "-q", dsn)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out := runCmd(t, "pgbench", "-M", mode, "-c", "4", "-t", "100", "-n", dsn)
		if !strings.Contains(out, "number of transactions actually processed: 400/400") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
	}
	var n int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM pgbench_history").Scan(&n); err != nil || n != 1200 {
		t.Fatalf("pgbench_history %d rows, %v", n, err)
	}
	if st := s.Stats(); st.CommitsSolo < 1200 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSCRAM(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{Users: map[string]string{"app": "s3cret"}}, ModeSolo, 0)
	port := s.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	dsn := func(user, pw string) string {
		return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, pw, port, c.Database())
	}
	conn, err := pgx.Connect(ctx, dsn("app", "s3cret"))
	if err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatal(err)
	}
	conn.Close(ctx)
	db, _ := sql.Open("postgres", dsn("app", "s3cret"))
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatalf("lib/pq SCRAM: %v", err)
	}
	for _, bad := range [][2]string{{"app", "wrong"}, {"nobody", "s3cret"}} {
		_, err := pgx.Connect(ctx, dsn(bad[0], bad[1]))
		if pgCode(err) != "28P01" {
			t.Fatalf("%s/%s: want 28P01, got %v", bad[0], bad[1], err)
		}
	}
}

func TestCancelRequest(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	cancelSleep(t, s.connect(t), "pg_sleep")
}

// TestCancelRequestFallbackHost: local_dsn lists a host that is down before the one the
// session reached; the cancel request goes to the host the session is connected to.
func TestCancelRequestFallbackHost(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	dead, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable", pgtest.Superuser, dead, c.Port(), c.Database())
	s := startShimDSN(t, c, dsn, Options{}, ModeSolo, 0)
	cancelSleep(t, s.connect(t), "pg_sleep on the DSN's second host")
}

// TestLocalDatabaseOverUnixSocket: local_dsn — the sessions' and the Shipper's — may name the
// local database's Unix-domain socket directory, as a sidecar on the database's host would
// (the cheaper transport: bench/README). Install, decoding, dual commits and cancel requests
// work over it.
func TestLocalDatabaseOverUnixSocket(t *testing.T) {
	t.Parallel()
	p := startCapPair(t)
	p.both(t, `CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL)`, `INSERT INTO acct VALUES (1, 100)`)
	local, peer := p.local.SocketDSN(p.local.Database()), p.peer.DSN(p.peer.Database())
	ctx := capCtx(t, 60*time.Second)
	if err := Install(ctx, "a", local, peer, quietLogger()); err != nil {
		t.Fatal(err)
	}
	for _, db := range []*sql.DB{p.ldb, p.pdb} {
		if err := WriteTermRecord(ctx, db, 1, "a", true); err != nil {
			t.Fatal(err)
		}
	}
	sh := NewShipper(ShipperConfig{Site: "a", LocalDSN: local, PeerDSN: peer, Conns: 1, OpTimeout: 3 * time.Second,
		SequenceInterval: -1, Logger: quietLogger()})
	sh.SetTerm(1)
	runShipper(t, sh)
	shim := startShimDSN(t, p.local, local, Options{Peer: sh, Site: "a", Logger: quietLogger()}, ModeSolo, 1)
	catchUpToDual(t, sh, shim)

	conn := shim.connect(t)
	var viaSocket bool
	if err := conn.QueryRow(ctx, "SELECT client_addr IS NULL FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&viaSocket); err != nil {
		t.Fatal(err)
	}
	if !viaSocket {
		t.Fatal("the session's backend has a client address: not connected over the Unix socket")
	}
	if _, err := conn.Exec(ctx, "UPDATE acct SET balance = balance - 1 WHERE id = 1"); err != nil {
		t.Fatalf("dual commit: %v", err)
	}
	if st := shim.Stats(); st.CommitsDual != 1 {
		t.Errorf("stats %+v, want one dual commit", st)
	}
	var balance int
	if err := p.ldb.QueryRowContext(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&balance); err != nil || balance != 99 {
		t.Errorf("local balance = %d (%v), want 99", balance, err)
	}
	// The peer's COMMIT PREPARED may end after the client's reply (DESIGN §5.3).
	waitForLong(t, "the peer's balance 99", 10*time.Second, func() bool {
		return p.pdb.QueryRowContext(ctx, "SELECT balance FROM acct WHERE id = 1").Scan(&balance) == nil && balance == 99
	})

	cancelSleep(t, conn, "cancel over the Unix socket")
}

// TestCancelRequestAtMaxSessions: a cancel request takes no session slot, so it gets through
// when every slot is taken — here by the very session it cancels.
func TestCancelRequestAtMaxSessions(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{MaxSessions: 1}, ModeSolo, 0)
	conn := s.connect(t)
	ctx := context.Background()
	cancelSleep(t, conn, "pg_sleep with every session slot taken")
	// The slot is still the session's own: another session is refused.
	if _, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser)); pgCode(err) != "53300" {
		t.Fatalf("second session: want 53300, got %v", err)
	}
}

// TestStartupsBounded: connections that send nothing hold no session slot but are bounded
// (maxStartups): one more is closed at once; once they go, a session starts again.
func TestStartupsBounded(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{MaxSessions: 1}, ModeSolo, 0)
	var silent []net.Conn
	defer func() {
		for _, sc := range silent {
			sc.Close()
		}
	}()
	for range maxStartups(1) {
		sc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, sc)
	}
	time.Sleep(200 * time.Millisecond) // all accepted, all in startup
	extra, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !strings.Contains(fmt.Sprint(err), "reset") {
		t.Fatalf("a connection beyond %d in startup: read %v, want it closed at once", maxStartups(1), err)
	}
	for _, sc := range silent {
		sc.Close()
	}
	silent = nil
	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; {
		conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser))
		if err == nil {
			conn.Close(ctx)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after the silent connections went: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawSession speaks the protocol by hand to the shim, for framing tests.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	fe   *pgproto3.Frontend
	// asked counts the requests (Query, Sync, FunctionCall) sendMsgs sent since the last quiet
	// read: each is answered by at most one ReadyForQuery.
	asked int
	// owed follows the replies runSteps's messages are owed, for its reads until silence.
	owed owedReplies
}

func dialRaw(t *testing.T, s *testShim) *rawSession {
	t.Helper()
	conn, fe := sendStartup(t, s, pgproto3.ProtocolVersionNumber, pgtest.Superuser)
	r := &rawSession{t: t, conn: conn, fe: fe}
	r.until('Z')
	return r
}

// toEnd reads messages until the connection's end and returns their types (an error's with
// its code), then the read's error.
func (r *rawSession) toEnd() string {
	var out strings.Builder
	for {
		m, err := r.fe.Receive()
		if err != nil {
			return out.String() + " " + err.Error()
		}
		b, _ := m.Encode(nil)
		out.WriteByte(b[0])
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			out.WriteString("(" + e.Code + ")")
		}
	}
}

// until reads messages up to one of type typ and returns the messages' types.
func (r *rawSession) until(typ byte) (string, error) {
	var seen strings.Builder
	for {
		m, err := r.fe.Receive()
		if err != nil {
			return seen.String(), err
		}
		b, _ := m.Encode(nil)
		seen.WriteByte(b[0])
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			seen.WriteString("(" + e.Code + ")")
		}
		if b[0] == typ {
			return seen.String(), nil
		}
	}
}

// ready reads messages up to ReadyForQuery and returns their types and its status.
func (r *rawSession) ready() (string, byte) {
	r.t.Helper()
	var seen strings.Builder
	for {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("after %q: %v", seen.String(), err)
		}
		b, _ := m.Encode(nil)
		seen.WriteByte(b[0])
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			seen.WriteString("(" + e.Code + ")")
		}
		if z, ok := m.(*pgproto3.ReadyForQuery); ok {
			return seen.String(), z.TxStatus
		}
	}
}

// stmt queues Parse, Bind and Execute of q on the unnamed statement and portal.
func (r *rawSession) stmt(q string) {
	r.fe.SendParse(&pgproto3.Parse{Query: q})
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendExecute(&pgproto3.Execute{})
}

// simple sends qs as one simple Query, joined with "; ", without reading.
func (r *rawSession) simple(qs ...string) {
	r.fe.Send(&pgproto3.Query{String: strings.Join(qs, "; ")})
	r.fe.Flush()
}

// pipeline queues each of qs (stmt) and a Sync and sends them, without reading.
func (r *rawSession) pipeline(qs ...string) {
	for _, q := range qs {
		r.stmt(q)
	}
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
}

// sync sends Sync and what was queued, and reads up to ReadyForQuery (see ready).
func (r *rawSession) sync() (string, byte) {
	r.t.Helper()
	r.fe.SendSync(&pgproto3.Sync{})
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
	return r.ready()
}

// flush sends Flush and what was queued, and reads up to a message of type typ.
func (r *rawSession) flush(typ byte) string {
	r.t.Helper()
	r.fe.Send(&pgproto3.Flush{})
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
	got, err := r.until(typ)
	if err != nil {
		r.t.Fatalf("before Sync: %q %v", got, err)
	}
	return got
}

func (r *rawSession) query(q string) string {
	r.t.Helper()
	r.fe.Send(&pgproto3.Query{String: q})
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
	got, err := r.until('Z')
	if err != nil {
		r.t.Fatalf("query %q: %v (saw %s)", q, err, got)
	}
	return got
}

func TestProtocolViolationsEndOneSession(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	good := dialRaw(t, s)

	t.Run("oversized", func(t *testing.T) {
		bad := dialRaw(t, s)
		big := strings.Repeat("x", 2<<20) // max_message is 1 MiB in these tests
		bad.fe.Send(&pgproto3.Query{String: "SELECT '" + big + "'"})
		bad.fe.Flush()
		got, err := bad.until('Z')
		if !strings.Contains(got, "E(08P01)") || err == nil {
			t.Fatalf("oversized message: saw %q, err %v; want 08P01 then close", got, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		bad := dialRaw(t, s)
		// A Query whose string has no terminating NUL.
		msg := []byte{'Q', 0, 0, 0, 8, 'S', 'E', 'L', 'X'}
		bad.conn.Write(msg)
		got, err := bad.until('Z')
		if !strings.Contains(got, "E(08P01)") || err == nil {
			t.Fatalf("malformed message: saw %q, err %v", got, err)
		}
	})
	t.Run("bad length", func(t *testing.T) {
		bad := dialRaw(t, s)
		msg := []byte{'Q', 0, 0, 0, 2}
		bad.conn.Write(msg)
		got, err := bad.until('Z')
		if !strings.Contains(got, "E(08P01)") || err == nil {
			t.Fatalf("bad length: saw %q, err %v", got, err)
		}
	})
	t.Run("query inside a passed-through COPY", func(t *testing.T) {
		// A client pipelines a COPY FROM STDIN (passed through: it only opens a transaction
		// block), some data and then a query instead of CopyDone. PostgreSQL fails the COPY
		// and ends the session (it cannot skip the query); the shim must pass the query on
		// rather than wait for the COPY's end behind it (a fuzzed input left it waiting).
		c.Exec(t, "CREATE TABLE IF NOT EXISTS copyabort (v text)")
		bad := dialRaw(t, s)
		bad.fe.Send(&pgproto3.Query{String: "BEGIN; COPY copyabort FROM STDIN"})
		bad.fe.Send(&pgproto3.CopyData{Data: []byte("a\n")})
		bad.fe.Send(&pgproto3.Query{String: "SELECT 1"})
		bad.fe.Flush()
		got, err := bad.until('Z')
		if !strings.HasPrefix(got, "CG") || !strings.Contains(got, "E(08P01)") || err == nil {
			t.Fatalf("query inside COPY: saw %q, err %v; want CG, then 08P01 and the end of the session", got, err)
		}
	})
	t.Run("query inside an extended request", func(t *testing.T) {
		// PostgreSQL runs a Query sent before the Sync of an extended request after the
		// messages before it, in their transaction; the shim sent it ahead of them, so the
		// client read the replies out of order and the INSERT ran outside the shim's BEGIN.
		c.Exec(t, "CREATE TABLE IF NOT EXISTS midbatch (v int)")
		for _, m := range []pgproto3.FrontendMessage{&pgproto3.FunctionCall{Function: 1}, &pgproto3.Query{String: "SELECT count(*) FROM midbatch"}} {
			bad := dialRaw(t, s)
			bad.stmt("INSERT INTO midbatch VALUES (1)")
			bad.fe.Send(m)
			bad.fe.Send(&pgproto3.Sync{})
			bad.fe.Flush()
			got, err := bad.until('Z')
			if got != "E(08P01)" || err == nil {
				t.Fatalf("%T inside an extended request: saw %q, err %v; want 08P01 and the end of the session", m, got, err)
			}
		}
		// After an error (here the fenced shim's refusal) the Query is skipped up to the Sync,
		// as PostgreSQL skips it.
		fenced := startShim(t, c, Options{}, ModeSolo, 0)
		r := dialRaw(t, fenced)
		fenced.SetMode(ModeFenced, 0)
		r.stmt("SELECT 1")
		if got := r.flush('E'); got != "E(57P03)" {
			t.Fatalf("fenced: %q", got)
		}
		r.fe.Send(&pgproto3.Query{String: "INSERT INTO midbatch VALUES (2)"})
		if got, st := r.sync(); got != "Z" || st != 'I' {
			t.Fatalf("Query after an error inside an extended request: saw %q %c, want it skipped up to the Sync", got, st)
		}
		var n int
		if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM midbatch").Scan(&n); err != nil || n != 0 {
			t.Fatalf("rows of the refused requests: %d, %v", n, err)
		}
	})
	// The other session is untouched.
	if got := good.query("SELECT 1"); got != "TDCZ" {
		t.Fatalf("good session after others failed: %q", got)
	}
	// The failed sessions' ends are counted just after their clients saw the close.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().SessionsActive != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := s.Stats(); st.SessionsActive != 1 {
		t.Fatalf("active sessions %d, want 1", st.SessionsActive)
	}
}

// TestExtendedCommitOutsideTransaction: an extended-protocol COMMIT with no transaction open
// gets PostgreSQL's warning and COMMIT, and what follows it in the request runs; the shim sent
// the COMMIT's Bind with a Sync of its own behind it, which dropped the portal, so the client
// got "portal does not exist" and lost the rest of the request.
func TestExtendedCommitOutsideTransaction(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	r.stmt("COMMIT")
	r.stmt("INSERT INTO acct VALUES (1, 0)")
	if got, st := r.sync(); got != "12NC12CZ" || st != 'I' {
		t.Fatalf("COMMIT outside a transaction, then a write: %q %c; want 12NC12CZ I", got, st)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id = 1") != 1 {
		t.Fatal("the write after the COMMIT is missing")
	}
	// After a Flush, and through a named statement.
	r.stmt("SELECT 1")
	if got := r.flush('C'); got != "12DC" {
		t.Fatalf("SELECT before Flush: %q", got)
	}
	r.fe.SendParse(&pgproto3.Parse{Name: "c", Query: "END"})
	r.fe.SendBind(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "c"})
	r.fe.SendExecute(&pgproto3.Execute{Portal: "p"})
	if got, st := r.sync(); got != "12NCZ" || st != 'I' {
		t.Fatalf("END outside a transaction after a Flush: %q %c; want 12NCZ I", got, st)
	}
	// AND CHAIN is PostgreSQL's error there.
	r.stmt("COMMIT AND CHAIN")
	r.stmt("INSERT INTO acct VALUES (2, 0)")
	if got, st := r.sync(); got != "12E(25P01)Z" || st != 'I' {
		t.Fatalf("COMMIT AND CHAIN outside a transaction: %q %c; want 12E(25P01)Z I", got, st)
	}
	if rowCount(t, c, "id = 2") != 0 || preparedCount(t, c) != 0 {
		t.Fatal("the write after a failed COMMIT AND CHAIN ran")
	}
}

// TestFailedParseRedefined: a named statement whose Parse failed and that the client then
// parses again as a write is a write: the shim kept the failed Parse's record (a read), so the
// INSERT ran unwrapped and committed without the peer.
func TestFailedParseRedefined(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	r.fe.SendParse(&pgproto3.Parse{Name: "s", Query: "SELECT * FROM nosuch"})
	if got, _ := r.sync(); got != "E(42P01)Z" {
		t.Fatalf("failed Parse: %q", got)
	}
	r.fe.SendParse(&pgproto3.Parse{Name: "s", Query: "INSERT INTO acct VALUES (1, 0)"})
	r.fe.SendBind(&pgproto3.Bind{PreparedStatement: "s"})
	r.fe.SendExecute(&pgproto3.Execute{})
	if got, st := r.sync(); got != "12CZ" || st != 'I' {
		t.Fatalf("Parse again and run: %q %c", got, st)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id = 1") != 1 {
		t.Fatal("row missing")
	}
}

// TestSavepointOutsideBlock: SAVEPOINT, RELEASE and ROLLBACK TO in a request without BEGIN
// fail as PostgreSQL fails them (25P01), the request's writes rolled back; the shim's own BEGIN
// made them work, so the writes before a ROLLBACK TO committed where PostgreSQL commits none.
func TestSavepointOutsideBlock(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	for q, want := range map[string]string{
		"INSERT INTO acct VALUES (1, 0); SAVEPOINT a; INSERT INTO acct VALUES (2, 0); ROLLBACK TO a": "CE(25P01)Z",
		"SAVEPOINT a; INSERT INTO acct VALUES (3, 0)":                                                "E(25P01)Z",
		"SELECT 1; RELEASE a; INSERT INTO acct VALUES (3, 0)":                                        "TDCE(25P01)Z",
	} {
		if got := r.query(q); got != want {
			t.Fatalf("%s: %q, want %q", q, got, want)
		}
	}
	r.stmt("INSERT INTO acct VALUES (4, 0)")
	r.stmt("SAVEPOINT a")
	if got, st := r.sync(); got != "12C12E(25P01)Z" || st != 'I' {
		t.Fatalf("extended write, then SAVEPOINT: %q %c", got, st)
	}
	if n := rowCount(t, c, "true"); n != 0 {
		t.Fatalf("%d rows committed by requests PostgreSQL fails", n)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("peer calls %v", calls)
	}
	// In a transaction block they work.
	if got := r.query("BEGIN; INSERT INTO acct VALUES (5, 0); SAVEPOINT a; INSERT INTO acct VALUES (6, 0); ROLLBACK TO a; COMMIT"); got != "CCCCCCZ" {
		t.Fatalf("savepoints in a block: %q", got)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id = 5") != 1 || rowCount(t, c, "true") != 1 || preparedCount(t, c) != 0 {
		t.Fatal("wrong rows after savepoints in a block")
	}
}

func TestModes(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	ctx := context.Background()
	conn := s.connect(t) // idle across every mode change below

	_, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)")
	if pgCode(err) != "25006" {
		t.Fatalf("read-only mode: want 25006, got %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil {
		t.Fatalf("read in read-only mode: %v", err)
	}
	// A client that turns read-only off still cannot commit a write, implicit or explicit: the
	// setting goes back on before its next transaction, and a transaction it makes read-write
	// itself is refused at COMMIT.
	if _, err := conn.Exec(ctx, "RESET ALL"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO acct VALUES (2, 1)")
	if pgCode(err) != "25006" {
		t.Fatalf("implicit write after RESET ALL in read-only mode: want 25006, got %v", err)
	}
	if _, err := conn.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "BEGIN READ WRITE; INSERT INTO acct VALUES (2, 1); COMMIT")
	if pgCode(err) != "25006" || !strings.Contains(err.Error(), "tandem:") {
		t.Fatalf("write commit in read-only mode: want tandem 25006, got %v", err)
	}
	if rowCount(t, c, "true") != 0 {
		t.Fatal("write committed in read-only mode")
	}

	s.SetMode(ModeDual, 1)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (3, 1)"); err != nil {
		t.Fatalf("write after switching to dual: %v", err)
	}
	checkDual(t, peer.take(), 1)

	s.SetMode(ModeSolo, 1)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES ($1, 1)", 4); err != nil {
		t.Fatalf("write after switching to solo: %v", err)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("solo called the peer: %v", calls)
	}
	// Fencing in the database: a newer term there refuses a solo commit.
	c.Exec(t, "UPDATE tandem.state SET term = 2")
	_, err = conn.Exec(ctx, "INSERT INTO acct VALUES (40, 1)")
	if pgCode(err) != "25006" || !strings.Contains(err.Error(), "term") {
		t.Fatalf("solo commit under a newer term: want 25006, got %v", err)
	}
	// So does the same term held by another master (two sites that took one term on stale
	// views), in solo and in dual mode.
	c.Exec(t, "UPDATE tandem.state SET term = 1, master = 'other'")
	_, err = conn.Exec(ctx, "INSERT INTO acct VALUES (41, 1)")
	if pgCode(err) != "25006" || !strings.Contains(err.Error(), "another master") {
		t.Fatalf("solo commit under the same term of another master: want 25006, got %v", err)
	}
	s.SetMode(ModeDual, 1)
	_, err = conn.Exec(ctx, "INSERT INTO acct VALUES (42, 1)")
	if pgCode(err) != "25006" || !strings.Contains(err.Error(), "term 1 of master other") {
		t.Fatalf("dual commit under the same term of another master: want 25006, got %v", err)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("a fenced dual commit called the peer: %v", calls)
	}
	s.SetMode(ModeSolo, 1)
	c.Exec(t, "UPDATE tandem.state SET term = 1, master = 'site1'")

	// A transaction open while the site gets fenced may read but not commit its write.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES (5, 1)"); err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeFenced, 1)
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM acct").Scan(&n); err != nil {
		t.Fatalf("read inside an open transaction while fenced: %v", err)
	}
	if err := tx.Commit(ctx); pgCode(err) != "25006" {
		t.Fatalf("commit while fenced: want 25006, got %v", err)
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); pgCode(err) != "57P03" {
		t.Fatalf("new transaction while fenced: want 57P03, got %v", err)
	}
	if _, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser)); pgCode(err) != "57P03" {
		t.Fatalf("new session while fenced: want 57P03, got %v", err)
	}

	s.SetMode(ModeSolo, 1)
	if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (6, 1)"); err != nil {
		t.Fatalf("write after unfencing: %v", err)
	}
	if got := rowCount(t, c, "true"); got != 3 {
		t.Fatalf("%d rows, want 3 (ids 3, 4, 6)", got)
	}
}

// TestReadOnlyUnwrapped: in read-only and fenced modes, statements the shim never wraps (they
// cannot run in a transaction block) cannot write either, even after the client turned
// default_transaction_read_only off: CALL and DO blocks that commit are refused, the others run
// with the setting put back on, so PostgreSQL refuses them if they write.
func TestReadOnlyUnwrapped(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE PROCEDURE ins(i int) LANGUAGE sql AS $$INSERT INTO acct VALUES (i, 0)$$")
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	r := dialRaw(t, s)
	r.query("SET default_transaction_read_only = off")
	for _, q := range []string{
		"CALL ins(1)",
		"DO $$BEGIN INSERT INTO acct VALUES (2, 0); COMMIT; END$$",
		"SELECT 1; CALL ins(3)",
		"BEGIN; ROLLBACK; CALL ins(4)",
	} {
		if got := r.query(q); !strings.Contains(got, "E(25006)") {
			t.Errorf("%s in read-only mode: %q, want 25006", q, got)
		}
	}
	r.stmt("CALL ins(5)")
	if got, st := r.sync(); got != "E(25006)Z" || st != 'I' {
		t.Errorf("extended CALL in read-only mode: %q %c", got, st)
	}
	// (The setting is on already: put back at the first request after the client's SET.)
	if got := r.query("CREATE INDEX CONCURRENTLY acct_bal ON acct (bal)"); got != "E(25006)Z" {
		t.Errorf("CREATE INDEX CONCURRENTLY in read-only mode: %q, want 25006", got)
	}
	if got := r.query("VACUUM acct"); got != "CZ" {
		t.Errorf("VACUUM in read-only mode: %q", got)
	}
	// Inside a transaction block CALL runs, read-only: the client cannot make the block
	// read-write (TestReadOnlyClientMadeReadWrite), and PostgreSQL refuses its writes.
	r.query("SET default_transaction_read_only = off")
	if got := r.query("BEGIN READ WRITE"); !strings.Contains(got, "E(25006)") || !strings.HasSuffix(got, "Z") {
		t.Errorf("BEGIN READ WRITE in read-only mode: %q", got)
	}
	r.query("BEGIN")
	if got := r.query("CALL ins(6)"); !strings.Contains(got, "E(25006)") {
		t.Errorf("CALL in a transaction block in read-only mode: %q", got)
	}
	r.query("ROLLBACK")
	// A block made read-write while the site was master (solo) goes on in read-only mode: its
	// CALL runs, and its writes are refused at COMMIT.
	s.SetMode(ModeSolo, 1)
	r.query("BEGIN READ WRITE")
	s.SetMode(ModeReadOnly, 1)
	if got := r.query("CALL ins(6)"); got != "CZ" {
		t.Errorf("CALL in a block made read-write while master, in read-only mode: %q", got)
	}
	if got := r.query("COMMIT"); got != "E(25006)Z" {
		t.Errorf("COMMIT after CALL in read-only mode: %q", got)
	}

	// Fenced: a transaction open from before may end and go on to CALL only to be refused.
	s.SetMode(ModeSolo, 1)
	r.query("BEGIN")
	s.SetMode(ModeFenced, 1)
	if got := r.query("ROLLBACK; CALL ins(7)"); got != "CE(25006)Z" {
		t.Errorf("ROLLBACK; CALL while fenced: %q", got)
	}
	if n := rowCount(t, c, "true"); n != 0 {
		t.Fatalf("%d rows written on a read-only or fenced site", n)
	}
	var idx int
	if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM pg_indexes WHERE indexname = 'acct_bal'").Scan(&idx); err != nil || idx != 0 {
		t.Fatalf("index built on a read-only site: %d %v", idx, err)
	}
	if calls := peer.take(); len(calls) != 0 {
		t.Fatalf("peer calls %v", calls)
	}
}

func TestExtendedFlush(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	r.fe.SendParse(&pgproto3.Parse{Query: "INSERT INTO acct VALUES (1, 0)"})
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendExecute(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Flush{})
	if err := r.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	// Flush makes the replies come before any Sync.
	got, err := r.until('C')
	if err != nil || got != "12C" {
		t.Fatalf("before Sync: %q %v", got, err)
	}
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
	m, err := r.fe.Receive()
	if rfq, ok := m.(*pgproto3.ReadyForQuery); err != nil || !ok || rfq.TxStatus != 'I' {
		t.Fatalf("after Sync: %#v %v", m, err)
	}
	checkDual(t, peer.take(), 1)
	if rowCount(t, c, "id = 1") != 1 {
		t.Fatal("row missing")
	}
	// A failing statement before Flush: the error, then ReadyForQuery I at Sync, nothing left.
	r.fe.SendParse(&pgproto3.Parse{Query: "INSERT INTO acct VALUES (1, 0)"})
	r.fe.SendBind(&pgproto3.Bind{})
	r.fe.SendExecute(&pgproto3.Execute{})
	r.fe.Send(&pgproto3.Flush{})
	r.fe.SendSync(&pgproto3.Sync{})
	r.fe.Flush()
	if got, err := r.until('Z'); err != nil || got != "12E(23505)Z" {
		t.Fatalf("failing statement: %q %v", got, err)
	}
	if got := r.query("SELECT 1"); got != "TDCZ" {
		t.Fatalf("session after error: %q", got)
	}
	if calls := peer.take(); len(calls) != 0 || preparedCount(t, c) != 0 {
		t.Fatalf("failed statement reached the peer: %v", calls)
	}
}

// TestCopyInAnsweredAtOnce: a client answers a CopyInResponse at once, and its CopyData, Flush
// and CopyDone may reach the shim before the session has noted the COPY open (a loaded machine
// delays it; the copyIn hook makes it certain). The shim took the Flush for one of an extended
// request, queued a reply the backend never sends, and the next COMMIT hung.
func TestCopyInAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	s.hooks.copyIn.set(func() { time.Sleep(300 * time.Millisecond) })
	for i, extended := range []bool{true, false} {
		r := dialRaw(t, s)
		r.conn.SetDeadline(time.Now().Add(10 * time.Second))
		r.query("BEGIN")
		if extended {
			r.stmt("COPY acct FROM STDIN")
			r.fe.SendSync(&pgproto3.Sync{})
		} else {
			r.fe.Send(&pgproto3.Query{String: "COPY acct FROM STDIN"})
		}
		r.fe.Flush()
		if got, err := r.until('G'); err != nil {
			t.Fatalf("COPY: %q %v", got, err)
		}
		r.fe.Send(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\t0\n", 40+i))})
		r.fe.Send(&pgproto3.Flush{})
		r.fe.Send(&pgproto3.CopyDone{})
		if extended {
			if got, st := r.sync(); got != "CZ" || st != 'T' {
				t.Fatalf("COPY end: %q %c", got, st)
			}
		} else {
			r.fe.Flush()
			if got, st := r.ready(); got != "CZ" || st != 'T' {
				t.Fatalf("COPY end: %q %c", got, st)
			}
		}
		if got := r.query("COMMIT"); got != "CZ" {
			t.Fatalf("COMMIT after the COPY (extended %v): %q", extended, got)
		}
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, fmt.Sprintf("id = %d", 40+i)) != 1 {
			t.Fatalf("COPY (extended %v): row missing", extended)
		}
	}
}

// TestFlushedWritesWrapped: a write in an extended-protocol request that a Flush split, or that
// a Bind filling the batch buffer split, is wrapped like any other (DESIGN §5.1): a dual commit,
// never a plain local one.
func TestFlushedWritesWrapped(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, "CREATE TABLE blobs (id int PRIMARY KEY, v text)")
	peer := &fakePeer{c: c, t: t}
	s := startShimDSN(t, c, c.DSN(c.Database()), Options{Peer: peer}, ModeDual, 1,
		func(cf *config.TxShim) { cf.MaxMessage = 8 << 20 })
	wrapped := func(t *testing.T, where string) {
		t.Helper()
		checkDual(t, peer.take(), 1)
		if rowCount(t, c, where) != 1 {
			t.Fatalf("no row %s", where)
		}
	}

	t.Run("bind filling the batch buffer", func(t *testing.T) {
		conn := s.connect(t)
		if _, err := conn.Exec(context.Background(), "INSERT INTO blobs VALUES ($1, $2)", 1, strings.Repeat("x", maxBatchBuffer+100)); err != nil {
			t.Fatal(err)
		}
		checkDual(t, peer.take(), 1)
	})
	t.Run("parse, describe, flush; bind, execute, sync", func(t *testing.T) {
		r := dialRaw(t, s)
		r.fe.SendParse(&pgproto3.Parse{Query: "INSERT INTO acct VALUES (1, 0)"})
		r.fe.SendDescribe(&pgproto3.Describe{ObjectType: 'S'})
		r.flush('n')
		r.fe.SendBind(&pgproto3.Bind{})
		r.fe.SendExecute(&pgproto3.Execute{})
		if got, st := r.sync(); got != "2CZ" || st != 'I' {
			t.Fatalf("after Sync: %q %c", got, st)
		}
		wrapped(t, "id = 1")
	})
	t.Run("flush, then a write", func(t *testing.T) {
		r := dialRaw(t, s)
		r.fe.Send(&pgproto3.Flush{})
		r.stmt("INSERT INTO acct VALUES (2, 0)")
		if got, st := r.sync(); got != "12CZ" || st != 'I' {
			t.Fatalf("after Sync: %q %c", got, st)
		}
		wrapped(t, "id = 2")
	})
	t.Run("rollback, flush, then a write", func(t *testing.T) {
		r := dialRaw(t, s)
		r.query("BEGIN")
		r.stmt("ROLLBACK")
		r.flush('C')
		r.stmt("INSERT INTO acct VALUES (3, 0)")
		if got, st := r.sync(); got != "12CZ" || st != 'I' {
			t.Fatalf("after Sync: %q %c", got, st)
		}
		wrapped(t, "id = 3")
	})
	t.Run("flush during a passed-through COPY", func(t *testing.T) {
		r := dialRaw(t, s)
		r.query("BEGIN")
		r.stmt("COPY acct FROM STDIN")
		r.fe.SendSync(&pgproto3.Sync{})
		r.fe.Flush()
		if got, err := r.until('G'); err != nil {
			t.Fatalf("COPY: %q %v", got, err)
		}
		r.fe.Send(&pgproto3.CopyData{Data: []byte("4\t0\n")})
		r.fe.Send(&pgproto3.Flush{})
		r.fe.Send(&pgproto3.CopyDone{})
		if got, st := r.sync(); got != "CZ" || st != 'T' {
			t.Fatalf("COPY end: %q %c", got, st)
		}
		if got := r.query("COMMIT"); got != "CZ" {
			t.Fatalf("COMMIT: %q", got)
		}
		wrapped(t, "id = 4")
		r.stmt("INSERT INTO acct VALUES (5, 0)")
		if got, st := r.sync(); got != "12CZ" || st != 'I' {
			t.Fatalf("write after the COPY: %q %c", got, st)
		}
		wrapped(t, "id = 5")
	})
	t.Run("a COPY before a flush", func(t *testing.T) {
		// The COPY runs in a part sent before the request's Sync; the client sends its data
		// once it has the CopyInResponse. The shim took the COPY for one that stayed open, so
		// the Sync passed straight to the database: the client was left inside the shim's BEGIN
		// (status T), and nothing it wrote after was committed.
		for i, begin := range []bool{false, true} {
			r := dialRaw(t, s)
			if begin {
				r.query("BEGIN")
			}
			r.stmt("COPY acct FROM STDIN")
			if got := r.flush('G'); got != "12G" {
				t.Fatalf("COPY: %q", got)
			}
			r.fe.Send(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\t0\n", 10+i))})
			r.fe.Send(&pgproto3.CopyDone{})
			want := byte('I')
			if begin {
				want = 'T'
			}
			if got, st := r.sync(); got != "CZ" || st != want {
				t.Fatalf("COPY end (BEGIN first: %v): %q %c, want CZ %c", begin, got, st, want)
			}
			if begin {
				if got := r.query("COMMIT"); got != "CZ" {
					t.Fatalf("COMMIT: %q", got)
				}
			}
			wrapped(t, fmt.Sprintf("id = %d", 10+i))
			r.stmt(fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", 20+i))
			if got, st := r.sync(); got != "12CZ" || st != 'I' {
				t.Fatalf("write after the COPY: %q %c", got, st)
			}
			wrapped(t, fmt.Sprintf("id = %d", 20+i))
		}
	})
	t.Run("an error before a flush skips the rest", func(t *testing.T) {
		r := dialRaw(t, s)
		r.stmt("SELECT 1/0")
		r.flush('E')
		r.stmt("INSERT INTO acct VALUES (6, 0)")
		if got, st := r.sync(); got != "Z" || st != 'I' {
			t.Fatalf("after Sync: %q %c, want only ReadyForQuery", got, st)
		}
		if calls := peer.take(); len(calls) != 0 || rowCount(t, c, "id = 6") != 0 {
			t.Fatalf("a write skipped by PostgreSQL ran: peer calls %v", calls)
		}
	})
	t.Run("a portal bound before a flush", func(t *testing.T) {
		r := dialRaw(t, s)
		r.fe.SendParse(&pgproto3.Parse{Query: "SELECT count(*) FROM acct"})
		r.fe.SendBind(&pgproto3.Bind{})
		r.flush('2')
		r.fe.SendExecute(&pgproto3.Execute{})
		if got, st := r.sync(); got != "DCZ" || st != 'I' {
			t.Fatalf("after Sync: %q %c", got, st)
		}
	})
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d transactions left prepared", n)
	}
	if st := s.Stats(); st.CommitsPlain != 0 || st.Unwrapped != 0 {
		t.Fatalf("writes committed plainly: %+v", st)
	}
}

func TestExtendedCopyAndPipelinedWrites(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	r := dialRaw(t, s)
	extCopy := func(rows string) string {
		r.fe.SendParse(&pgproto3.Parse{Query: "COPY acct FROM STDIN"})
		r.fe.SendBind(&pgproto3.Bind{})
		r.fe.SendExecute(&pgproto3.Execute{})
		r.fe.SendSync(&pgproto3.Sync{})
		r.fe.Flush()
		got, err := r.until('G')
		if err != nil {
			t.Fatalf("copy start: %q %v", got, err)
		}
		r.fe.Send(&pgproto3.CopyData{Data: []byte(rows)})
		r.fe.Send(&pgproto3.CopyDone{})
		r.fe.SendSync(&pgproto3.Sync{}) // libpq's second Sync after an extended COPY
		r.fe.Flush()
		rest, err := r.until('Z')
		if err != nil {
			t.Fatalf("copy end: %q %v", rest, err)
		}
		return got + rest
	}
	// Outside a transaction: wrapped, so one dual commit.
	if got := extCopy("1\t10\n2\t20\n"); got != "12GCZ" {
		t.Fatalf("extended COPY: %q", got)
	}
	checkDual(t, peer.take(), 1)
	// Inside a transaction: passed through, committed by COMMIT.
	r.query("BEGIN")
	if got := extCopy("3\t30\n"); got != "12GCZ" {
		t.Fatalf("extended COPY in a transaction: %q", got)
	}
	if got := r.query("COMMIT"); got != "CZ" {
		t.Fatalf("COMMIT: %q", got)
	}
	checkDual(t, peer.take(), 1)
	if n := rowCount(t, c, "true"); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}

	// A pipeline of writes, each with its own Sync: three implicit transactions.
	conn := s.connect(t)
	ctx := context.Background()
	p := conn.PgConn().StartPipeline(ctx)
	for i := 10; i < 13; i++ {
		p.SendQueryParams("INSERT INTO acct VALUES ($1, 0)", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil, nil)
		p.Sync()
	}
	for i := 0; i < 3; i++ {
		res, err := p.GetResults()
		if err != nil {
			t.Fatal(err)
		}
		if rr, ok := res.(*pgconn.ResultReader); !ok {
			t.Fatalf("result %d is %T", i, res)
		} else if _, err := rr.Close(); err != nil {
			t.Fatal(err)
		}
		if res, err := p.GetResults(); err != nil {
			t.Fatal(err)
		} else if _, ok := res.(*pgconn.PipelineSync); !ok {
			t.Fatalf("want sync, got %T", res)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	checkDual(t, peer.take(), 3)
	if n := rowCount(t, c, "id BETWEEN 10 AND 12"); n != 3 {
		t.Fatalf("%d pipelined rows, want 3", n)
	}
}

func selfSignedTLS(t *testing.T) *tls.Config {
	t.Helper()
	der, key := selfSignedCert(t)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// selfSignedCert makes a self-signed server certificate for 127.0.0.1, valid for an hour either
// side of now, that verifies itself (a CA: usable as sslrootcert), and its key.
func selfSignedCert(t *testing.T) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func TestClientTLS(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	ctx := context.Background()
	withTLS := startShim(t, c, Options{TLS: selfSignedTLS(t)}, ModeSolo, 0)
	conn, err := pgx.Connect(ctx, strings.Replace(withTLS.dsn(pgtest.Superuser), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatalf("TLS session: %v", err)
	}
	defer conn.Close(ctx)
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("session is not TLS: %T", conn.PgConn().Conn())
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("query over TLS: %d %v", n, err)
	}
	plain := startShim(t, c, Options{}, ModeSolo, 0)
	if _, err := pgx.Connect(ctx, strings.Replace(plain.dsn(pgtest.Superuser), "sslmode=disable", "sslmode=require", 1)); err == nil {
		t.Fatal("sslmode=require succeeded against a shim without TLS")
	}
	conn2, err := pgx.Connect(ctx, strings.Replace(plain.dsn(pgtest.Superuser), "sslmode=disable", "sslmode=prefer", 1))
	if err != nil {
		t.Fatalf("sslmode=prefer against a shim without TLS: %v", err)
	}
	conn2.Close(ctx)
}

// TestGarbageClients sends random frames after startup: each such session ends, the process and
// the other sessions go on.
func TestGarbageClients(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeDual, 0)
	good := dialRaw(t, s)
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	types := []byte("QPBECDSHdcfFXpz\x00")
	for i := 0; i < 30; i++ {
		r := dialRaw(t, s)
		var buf []byte
		for j := 0; j < 1+rng.IntN(6); j++ {
			body := make([]byte, rng.IntN(40))
			for k := range body {
				body[k] = byte(rng.IntN(256))
				if rng.IntN(4) == 0 {
					body[k] = 0
				}
			}
			n := len(body) + 4
			if rng.IntN(10) == 0 {
				n = rng.IntN(1 << 30) // lying length
			}
			buf = append(buf, types[rng.IntN(len(types))], byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
			buf = append(buf, body...)
		}
		r.conn.Write(buf)
		r.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		io.Copy(io.Discard, r.conn)
		r.conn.Close()
	}
	if got := good.query("SELECT 1"); got != "TDCZ" {
		t.Fatalf("good session after garbage: %q", got)
	}
}

// TestFastPathCalls: a fast-path function call may write, and the shim cannot tell. In a
// transaction it counts as a write, so the commit is dual; outside one it is refused in
// read-only and fenced modes even after the client turned default_transaction_read_only off.
func TestFastPathCalls(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE FUNCTION fp_write(int) RETURNS int LANGUAGE sql AS 'INSERT INTO acct VALUES ($1, 0) RETURNING id'`)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)
	var oid uint32
	if err := s.connect(t).QueryRow(t.Context(), `SELECT 'fp_write(int)'::regprocedure::oid`).Scan(&oid); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, s)
	call := func(id int) string {
		t.Helper()
		r.fe.Send(&pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{0},
			Arguments: [][]byte{[]byte(strconv.Itoa(id))}, ResultFormatCode: 0})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got, err := r.until('Z')
		if err != nil {
			t.Fatalf("fast-path call: %v (saw %s)", err, got)
		}
		return got
	}

	if got := r.query("BEGIN"); got != "CZ" {
		t.Fatalf("BEGIN: %s", got)
	}
	if got := call(1); got != "VZ" {
		t.Fatalf("fast-path call in a transaction: %s, want a result", got)
	}
	if got := r.query("COMMIT"); got != "CZ" {
		t.Fatalf("COMMIT: %s", got)
	}
	if calls := peer.take(); len(calls) != 2 || !strings.HasPrefix(calls[0], "prepare ") || !strings.HasPrefix(calls[1], "commit ") {
		t.Errorf("peer calls %v for a transaction that wrote through a fast-path call, want prepare and commit", calls)
	}

	for _, m := range []struct {
		mode Mode
		code string
	}{{ModeReadOnly, "25006"}, {ModeFenced, "57P03"}} {
		s.SetMode(m.mode, 1)
		r.query("SELECT 1") // the mode's settings reach the session
		r.query("SET default_transaction_read_only = off")
		if got := call(10); got != "E("+m.code+")Z" {
			t.Errorf("%v: fast-path call outside a transaction: %s, want E(%s)Z", m.mode, got, m.code)
		}
	}
	if n := rowCount(t, c, "id = 10"); n != 0 {
		t.Errorf("a fast-path call wrote on a read-only or fenced site")
	}
	s.SetMode(ModeDual, 2)
	// The client's own default_transaction_read_only (off) given back: reported (before the
	// ReadyForQuery, where PostgreSQL reports parameters).
	if got := call(11); strings.Replace(got, "S", "", 1) != "VZ" {
		t.Errorf("dual: fast-path call outside a transaction: %s, want a result", got)
	}
}

// TestConcurrentIndexShips: CREATE and DROP INDEX … CONCURRENTLY through a dual shim, which
// cannot run in a transaction block and so cannot ship in their own, reach the peer once they
// ran (recorded in tandem.ddl without CONCURRENTLY), before the client hears back — over the
// simple and the extended protocol. A unique index made so holds on the peer too.
func TestConcurrentIndexShips(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE users (id int PRIMARY KEY, email text)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	index := func(name string) int {
		return queryOne[int](t, p.pdb, `SELECT count(*) FROM pg_indexes WHERE tablename = 'users' AND indexname = $1`, name)
	}
	// Simple protocol: the reply comes once the peer has the index.
	if _, err := conn.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY users_email ON users (email)`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if index("users_email") != 1 {
		t.Fatal("CREATE UNIQUE INDEX CONCURRENTLY did not reach the peer before its reply")
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users VALUES (1, 'a@x')`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.pdb.Exec(`INSERT INTO users VALUES (2, 'a@x')`); err == nil {
		t.Error("the peer took a duplicate email: its index is not unique")
	}
	// Extended protocol, and a drop.
	if _, err := conn.Exec(ctx, `CREATE INDEX CONCURRENTLY IF NOT EXISTS users_id_email ON users (id, email)`, pgx.QueryExecModeExec); err != nil {
		t.Fatal(err)
	}
	if index("users_id_email") != 1 {
		t.Fatal("CREATE INDEX CONCURRENTLY (extended protocol) did not reach the peer")
	}
	if _, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY users_email`, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	if index("users_email") != 0 {
		t.Fatal("DROP INDEX CONCURRENTLY did not reach the peer")
	}
	// A failed one records nothing: the next transactions still ship.
	if _, err := conn.Exec(ctx, `CREATE INDEX CONCURRENTLY users_bad ON users (nope)`, pgx.QueryExecModeSimpleProtocol); err == nil {
		t.Fatal("an index on a missing column was made")
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users VALUES (3, 'c@x')`); err != nil {
		t.Fatal(err)
	}
	// A dual commit's COMMIT PREPARED on the peer may follow its reply.
	waitForLong(t, "both users on the peer", 10*time.Second, func() bool { return queryOne[int](t, p.pdb, `SELECT count(*) FROM users`) == 2 })
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the indexes: mode %v, peer synced %v", m, sh.PeerSynced())
	}
}

// TestAddedDefaultsRefused: ALTER TABLE … ADD COLUMN through the shim with a default that each
// database would compute for itself in the rows already there (now(), a volatile function, a
// serial or identity column) is refused with 0A000 and rolls back, on a table with rows; a
// constant default, an empty table and the workaround the error suggests pass, and both
// databases end with the same values.
func TestAddedDefaultsRefused(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE items (id int PRIMARY KEY)`, `INSERT INTO items SELECT generate_series(1, 5)`,
		`CREATE TABLE fresh (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	exec := func(sql string) error {
		_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		return err
	}
	for _, sql := range []string{
		`ALTER TABLE items ADD COLUMN at timestamptz DEFAULT now()`,
		`ALTER TABLE items ADD COLUMN who text NOT NULL DEFAULT CURRENT_USER`,
		`ALTER TABLE items ADD COLUMN n int DEFAULT 1, ADD COLUMN r float8 DEFAULT random()`,
		`ALTER TABLE items ADD COLUMN s serial`,
		`ALTER TABLE items ADD COLUMN g int GENERATED ALWAYS AS IDENTITY`,
		`BEGIN; SAVEPOINT a; ALTER TABLE items ADD COLUMN u uuid DEFAULT gen_random_uuid(); COMMIT`,
	} {
		if err := exec(sql); pgCode(err) != "0A000" {
			t.Errorf("%s: want 0A000, got %v", sql, err)
		}
		if err := exec(`ROLLBACK`); err != nil { // a failed explicit transaction ends here
			t.Fatal(err)
		}
	}
	if n := queryOne[int](t, p.ldb, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attnum > 0 AND NOT attisdropped`); n != 1 {
		t.Fatalf("items has %d columns after the refusals, want 1", n)
	}
	// A constant default (through an immutable cast too), an empty table, the workaround.
	for _, sql := range []string{
		`ALTER TABLE items ADD COLUMN flag bool DEFAULT false, ADD COLUMN big bigint DEFAULT 0, ADD COLUMN code varchar(3) DEFAULT 'ab'`,
		`ALTER TABLE fresh ADD COLUMN at timestamptz DEFAULT now()`,
		`BEGIN; ALTER TABLE items ADD COLUMN at timestamptz; UPDATE items SET at = clock_timestamp(); ALTER TABLE items ALTER COLUMN at SET DEFAULT now(); COMMIT`,
		`INSERT INTO items (id) VALUES (6)`,
	} {
		if err := exec(sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	const q = `SELECT string_agg(format('%s %s %s %s %s', id, flag, big, code, at), ', ' ORDER BY id) FROM items`
	want := queryOne[string](t, p.ldb, q)
	waitForLong(t, "the peer's items as the local ones", 10*time.Second, func() bool { return queryOne[string](t, p.pdb, q) == want })
}

// TestKeylessTablesGetReplicaIdentity: a table made through the shim without a primary key —
// CREATE TABLE, CREATE TABLE … AS, SELECT … INTO, a partition of a keyless parent, an
// inheritance child of a keyed one, a keyed table whose key is dropped — gets REPLICA IDENTITY
// FULL on both databases in the statement's transaction, so UPDATE and DELETE on it work
// through the shim and reach the peer; a keyless table the shim did not make keyless is left
// as it is.
func TestKeylessTablesGetReplicaIdentity(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE items (id int PRIMARY KEY, v int)`)
	catchUpToDual(t, sh, shim)
	// Made after install, straight on both databases: not the shim's to change.
	p.both(t, `CREATE TABLE other (a int)`)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	exec := func(sql string, mode pgx.QueryExecMode) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, mode); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	simple, ext := pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec
	exec(`CREATE TABLE plain (a int, b text)`, simple)
	exec(`CREATE TABLE IF NOT EXISTS viaext (a int, b text)`, ext)
	exec(`CREATE TABLE made AS SELECT g AS a, 'm'::text AS b FROM generate_series(1, 3) g`, simple)
	exec(`SELECT g AS a, 's'::text AS b INTO selinto FROM generate_series(1, 3) g`, simple)
	exec(`BEGIN; CREATE TABLE parted (a int, b text) PARTITION BY LIST (b); CREATE TABLE parted_x PARTITION OF parted FOR VALUES IN ('x', 'y', 'u'); COMMIT`, simple)
	exec(`CREATE TABLE kid (a int, b text) INHERITS (items)`, simple)
	exec(`CREATE TABLE unkeyed (a int PRIMARY KEY, b text)`, simple)
	exec(`INSERT INTO unkeyed VALUES (1, 'a'), (2, 'b'), (3, 'c')`, simple)
	exec(`ALTER TABLE unkeyed DROP CONSTRAINT unkeyed_pkey`, simple)
	exec(`INSERT INTO unkeyed VALUES (3, 'c')`, simple) // a duplicate, now that it has no key
	// In the transaction that made it: the peer sets the identity before it meets the rows.
	exec(`BEGIN; CREATE TABLE sametx (a int, b text); INSERT INTO sametx VALUES (1, 'a'), (1, 'a'), (2, 'b');
UPDATE sametx SET b = 'u' WHERE a = 2; DELETE FROM sametx WHERE ctid = (SELECT ctid FROM sametx WHERE a = 1 LIMIT 1); COMMIT`, simple)

	const ident = `SELECT string_agg(relname || ':' || relreplident::text, ' ' ORDER BY relname) FROM pg_class
  WHERE relname IN ('plain', 'viaext', 'made', 'selinto', 'parted', 'parted_x', 'kid', 'unkeyed', 'sametx', 'other', 'items')`
	const want = `items:d kid:f made:f other:d parted:f parted_x:f plain:f sametx:f selinto:f unkeyed:f viaext:f`
	if got := queryOne[string](t, p.ldb, ident); got != want {
		t.Errorf("local replica identities: %s, want %s", got, want)
	}
	for _, tbl := range []string{"plain", "viaext"} {
		exec(`INSERT INTO `+tbl+` VALUES (1, 'a'), (1, 'a'), (2, NULL)`, simple)
	}
	exec(`INSERT INTO parted VALUES (1, 'x'), (2, 'y')`, simple)
	exec(`INSERT INTO kid VALUES (10, 1, 1, 'k'), (11, 2, 2, 'k')`, simple)
	for _, tbl := range []string{"plain", "viaext", "made", "selinto", "parted", "kid", "unkeyed"} {
		exec(`UPDATE `+tbl+` SET b = 'u' WHERE a = 1`, simple)
		exec(`DELETE FROM `+tbl+` WHERE a = 2`, ext)
	}
	exec(`UPDATE unkeyed SET b = 'twice' WHERE a = 3`, simple)

	waitForLong(t, "the peer's tables as the local ones", 10*time.Second, func() bool {
		diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
		return err == nil && len(diffs) == 0
	})
	requireSame(t, p)
	if got := queryOne[string](t, p.pdb, ident); got != want {
		t.Errorf("peer replica identities: %s, want %s", got, want)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the keyless tables: mode %v, peer synced %v", m, sh.PeerSynced())
	}
}

// TestRetypeUsingRefused: ALTER TABLE … ALTER COLUMN … TYPE … USING an expression that is not
// immutable (random(), now(), clock_timestamp(), gen_random_uuid(), nextval), or that reads a
// system column (xmin, xmax, cmin, cmax, ctid, tableoid), would rewrite the rows there with
// values each database computes for itself: through the shim it is refused
// with 0A000 and rolls back, on a table with rows. An immutable expression, an empty table and
// a missing table with IF EXISTS pass, and both databases end the same.
func TestRetypeUsingRefused(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE SEQUENCE seq`,
		`CREATE TABLE items (id int PRIMARY KEY, v text, ts timestamp)`,
		`INSERT INTO items SELECT g, g::text, '2020-01-01'::timestamp + g * interval '1 day' FROM generate_series(1, 5) g`,
		`CREATE TABLE fresh (id int PRIMARY KEY, v text)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	simple, ext := pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec
	exec := func(sql string, mode pgx.QueryExecMode) error {
		_, err := conn.Exec(ctx, sql, mode)
		return err
	}
	for _, tt := range []struct {
		sql  string
		mode pgx.QueryExecMode
	}{
		{`ALTER TABLE items ALTER COLUMN v TYPE float8 USING random()`, simple},
		{`ALTER TABLE items ALTER COLUMN ts TYPE timestamptz USING now()`, simple},
		{`alter table public.items alter ts set data type timestamptz using clock_timestamp() -- when`, simple},
		{`ALTER TABLE items ALTER COLUMN v TYPE uuid USING gen_random_uuid()`, ext},
		{`ALTER TABLE ONLY "items" ALTER COLUMN v TYPE bigint USING nextval('seq')`, ext},
		{`ALTER TABLE items ALTER v TYPE int USING v::int, ALTER COLUMN ts TYPE text USING concat(ts, random())`, simple},
		{`BEGIN; SAVEPOINT a; ALTER TABLE items ALTER COLUMN v TYPE int USING (v::int + (random() * 10)::int); COMMIT`, simple},
		// System columns: immutable as far as PostgreSQL is concerned, but the peer runs the
		// statement on rows of its own transaction ids, places and table OID.
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING xmin::text`, simple},
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING v || ctid::text`, ext},
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING items.tableoid::text`, simple},
		{`ALTER TABLE items ALTER v TYPE text USING "xmin"::text || v`, simple},
		{`ALTER TABLE items ALTER v TYPE int USING v::int, ALTER id TYPE bigint USING id + CMAX::text::bigint`, ext},
	} {
		if err := exec(tt.sql, tt.mode); pgCode(err) != "0A000" {
			t.Errorf("%s: want 0A000, got %v", tt.sql, err)
		}
		if err := exec(`ROLLBACK`, simple); err != nil { // a failed explicit transaction ends here
			t.Fatal(err)
		}
	}
	const types = `SELECT string_agg(attrelid::regclass || '.' || attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attrelid::regclass::text, attnum)
  FROM pg_attribute WHERE attrelid IN ('items'::regclass, 'fresh'::regclass) AND attnum > 0 AND NOT attisdropped`
	if got, want := queryOne[string](t, p.ldb, types), `fresh.id integer, fresh.v text, items.id integer, items.v text, items.ts timestamp without time zone`; got != want {
		t.Fatalf("column types after the refusals: %s, want %s", got, want)
	}
	for _, tt := range []struct {
		sql  string
		mode pgx.QueryExecMode
	}{
		{`ALTER TABLE items ALTER COLUMN v TYPE text USING v || substr(' xmin ctid', 1, 0)`, simple}, // in a string: no system column
		{`ALTER TABLE items ALTER COLUMN v TYPE int USING v::int`, simple},
		{`ALTER TABLE items ALTER COLUMN v TYPE bigint USING v * 2 + length('a,b'), ALTER COLUMN ts TYPE date USING ts::date`, ext},
		{`ALTER TABLE fresh ALTER COLUMN v TYPE text USING ctid::text`, simple}, // no rows to differ
		{`ALTER TABLE fresh ALTER COLUMN v TYPE timestamptz USING clock_timestamp()`, simple},
		{`ALTER TABLE IF EXISTS missing ALTER COLUMN v TYPE int USING random()`, simple},
		{`INSERT INTO fresh VALUES (1, '2021-02-03 04:05:06+00')`, simple},
	} {
		if err := exec(tt.sql, tt.mode); err != nil {
			t.Fatalf("%s: %v", tt.sql, err)
		}
	}
	waitForLong(t, "the peer's tables as the local ones", 10*time.Second, func() bool {
		diffs, err := Verify(ctx, p.local.DSN("app"), p.peer.DSN("app"))
		return err == nil && len(diffs) == 0
	})
	requireSame(t, p)
	if l, r := queryOne[string](t, p.ldb, types), queryOne[string](t, p.pdb, types); l != r {
		t.Fatalf("column types differ: local %s, peer %s", l, r)
	}
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the conversions: mode %v, peer synced %v", m, sh.PeerSynced())
	}
}

// TestZeroColumnTables: rows of tables whose published rows have no column — a table of no
// column, one whose only column is generated (not published) — are inserted, updated and
// deleted through the shim and reach the peer, one by one and in a run long enough for COPY.
func TestZeroColumnTables(t *testing.T) {
	t.Parallel()
	p, sh, shim := startShipPair(t, nil, Options{}, `CREATE TABLE items (id int PRIMARY KEY)`)
	catchUpToDual(t, sh, shim)
	ctx := capCtx(t, 60*time.Second)
	conn := shim.connect(t)
	for _, sql := range []string{
		`CREATE TABLE g (x int GENERATED ALWAYS AS (7) STORED)`,
		`CREATE TABLE z ()`,
		`INSERT INTO z DEFAULT VALUES`,
		`INSERT INTO z SELECT FROM generate_series(1, 3)`,
		`INSERT INTO z SELECT FROM generate_series(1, 100)`, // a run of inserts long enough for COPY
		`INSERT INTO g DEFAULT VALUES`,
		`INSERT INTO g SELECT FROM generate_series(1, 100)`,
		`DELETE FROM z WHERE ctid IN (SELECT ctid FROM z LIMIT 2)`,
		`UPDATE g SET x = DEFAULT WHERE ctid IN (SELECT ctid FROM g LIMIT 3)`,
		`DELETE FROM g WHERE ctid IN (SELECT ctid FROM g LIMIT 5)`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	const q = `SELECT format('%s %s %s', (SELECT count(*) FROM z), (SELECT count(*) FROM g), (SELECT sum(x) FROM g))`
	if got := queryOne[string](t, p.ldb, q); got != "102 96 672" {
		t.Fatalf("local rows: %s", got)
	}
	waitForLong(t, "the peer's rows as the local ones", 10*time.Second, func() bool { return queryOne[string](t, p.pdb, q) == "102 96 672" })
	requireSame(t, p)
	if m, _ := shim.Mode(); m != ModeDual || !sh.PeerSynced() {
		t.Fatalf("after the zero-column tables: mode %v, peer synced %v", m, sh.PeerSynced())
	}
}

// dialRawDSN is dialRaw to any server, PostgreSQL itself included (to compare with the shim).
func dialRawDSN(t *testing.T, dsn string) *rawSession {
	t.Helper()
	r, _, _ := dialRawDSNKeyed(t, dsn)
	return r
}

// dialRawDSNKeyed is dialRawDSN that also returns the session's BackendKeyData (its backend's
// process id and secret key, which a CancelRequest names).
func dialRawDSNKeyed(t *testing.T, dsn string) (*rawSession, uint32, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SyncConn(ctx); err != nil { // see connectLocal
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Conn.Close() })
	hc.Conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawSession{t: t, conn: hc.Conn, fe: hc.Frontend}, hc.PID, hc.SecretKey
}

// TestBlockOnlyStatementsOutsideBlock: LOCK and DECLARE (without WITH HOLD), which PostgreSQL
// runs only in a transaction block, failed there with 25P01 outside one but ran through the
// shim in the BEGIN it injected for a write in the same extended request (or, for a DECLARE of
// SELECT … FOR UPDATE alone, for the DECLARE itself): the lock or the cursor then vanished at
// the shim's commit, and writes PostgreSQL would have rolled back committed. The shim now
// answers as PostgreSQL does.
func TestBlockOnlyStatementsOutsideBlock(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	type step struct {
		simple bool
		sql    []string // extended: one Parse/Bind/Execute each, then Sync
	}
	cases := []struct {
		name string
		step step
	}{
		{"simple declare for update", step{simple: true, sql: []string{"DECLARE c CURSOR FOR SELECT * FROM acct FOR UPDATE"}}},
		{"simple insert, lock", step{simple: true, sql: []string{"INSERT INTO acct VALUES (1, 0); LOCK acct"}}},
		{"lock, insert", step{sql: []string{"LOCK acct", "INSERT INTO acct VALUES (1, 0)"}}},
		{"insert, lock", step{sql: []string{"INSERT INTO acct VALUES (1, 0)", "LOCK acct"}}},
		{"declare, insert", step{sql: []string{"DECLARE c CURSOR FOR SELECT 1", "INSERT INTO acct VALUES (1, 0)"}}},
		{"insert, declare", step{sql: []string{"INSERT INTO acct VALUES (1, 0)", "DECLARE c CURSOR FOR SELECT 1"}}},
		{"declare for update", step{sql: []string{"DECLARE c CURSOR FOR SELECT * FROM acct FOR UPDATE"}}},
		{"declare with hold, insert", step{sql: []string{"DECLARE c CURSOR WITH HOLD FOR SELECT 1", "INSERT INTO acct VALUES (1, 0)"}}},
		{"lock alone", step{sql: []string{"LOCK acct IN SHARE MODE"}}},
	}
	run := func(r *rawSession, st step) string {
		var got string
		var status byte
		if st.simple {
			got = r.query(st.sql[0])
			status = got[len(got)-1]
		} else {
			for _, q := range st.sql {
				r.stmt(q)
			}
			got, status = r.sync()
		}
		return fmt.Sprintf("%s %c, rows %d", got, status, rowCount(t, c, "id = 1"))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := run(dialRawDSN(t, c.DSN(c.Database())), tc.step)
			c.Exec(t, "DELETE FROM acct")
			got := run(dialRaw(t, s), tc.step)
			c.Exec(t, "DELETE FROM acct")
			peer.take()
			if got != want {
				t.Fatalf("through the shim: %s; PostgreSQL: %s", got, want)
			}
		})
	}
}

// TestClientReadOnlySetting: the default_transaction_read_only = on that read-only modes put on
// a session is the shim's, and leaving them gives the session back the client's own value: a
// client that set it on itself (before the site became backup, or while it was) kept it off
// after a promotion, as the shim RESET it, and a session whose last request in read-only mode
// was one the shim never wraps (VACUUM) stayed read-only after it. What the client is told by
// ParameterStatus always matches SHOW.
func TestClientReadOnlySetting(t *testing.T) {
	t.Parallel()
	_, peer, s := dualShim(t)
	ctx := context.Background()
	run := func(conn *pgx.Conn, q string) {
		t.Helper()
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	check := func(name string, conn *pgx.Conn, want string) {
		t.Helper()
		var got string
		if err := conn.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&got); err != nil {
			t.Fatalf("%s: SHOW: %v", name, err)
		}
		if got != want {
			t.Errorf("%s: default_transaction_read_only is %s, want %s", name, got, want)
		}
		if ps := conn.PgConn().ParameterStatus("default_transaction_read_only"); ps != got {
			t.Errorf("%s: ParameterStatus says %q, SHOW %q", name, ps, got)
		}
	}

	setInDual := s.connect(t)
	run(setInDual, "SET default_transaction_read_only = on")
	s.SetMode(ModeReadOnly, 1)
	setInRO, vacuumed, offInRO, plain := s.connect(t), s.connect(t), s.connect(t), s.connect(t)
	run(setInRO, "SET default_transaction_read_only = on")
	run(offInRO, "SET default_transaction_read_only = off")
	run(vacuumed, "VACUUM acct")
	check("set on in dual mode, now read-only", setInDual, "on")
	check("set on in read-only mode", setInRO, "on")
	// Put back on before its next transaction: the client's off is kept for the promotion.
	check("set off in read-only mode", offInRO, "on")
	check("plain, read-only mode", plain, "on")

	s.SetMode(ModeDual, 1)
	check("set on in dual mode, after promotion", setInDual, "on")
	check("set on in read-only mode, after promotion", setInRO, "on")
	check("set off in read-only mode, after promotion", offInRO, "off")
	check("plain, after promotion", plain, "off")
	run(vacuumed, "SELECT 1")
	check("VACUUM in read-only mode, after promotion", vacuumed, "off")
	run(vacuumed, "INSERT INTO acct VALUES (1, 0)")
	checkDual(t, peer.take(), 1)

	// Again, with the client changing its mind meanwhile.
	s.SetMode(ModeReadOnly, 1)
	check("plain, read-only again", plain, "on")
	run(setInDual, "RESET default_transaction_read_only")
	run(plain, "SET default_transaction_read_only = on")
	run(vacuumed, "VACUUM acct")
	run(vacuumed, "SET default_transaction_read_only = on")
	s.SetMode(ModeDual, 1)
	check("reset in read-only mode", setInDual, "off")
	check("set on in read-only mode again", plain, "on")
	check("VACUUM, then set on in read-only mode", vacuumed, "on")
}

func TestSetsReadOnly(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]bool{
		"SET default_transaction_read_only = on":                          true,
		"set SESSION default_transaction_read_only TO 'true'":             true,
		`SET "default_transaction_read_only" = 1`:                         true,
		"SET /* x */ default_transaction_read_only=yes":                   true,
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY":            true,
		"SET default_transaction_read_only = off":                         false,
		"SET LOCAL default_transaction_read_only = on":                    false,
		"SET default_transaction_read_only TO DEFAULT":                    false,
		"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE":           false,
		"SET transaction_read_only = on":                                  false,
		"SHOW default_transaction_read_only":                              false,
		"SELECT set_config('default_transaction_read_only', 'on', false)": false,
		`SET "DEFAULT_TRANSACTION_READ_ONLY" = on`:                        false,
	} {
		sts := splitStatements(q)
		if got := setsReadOnly(q, sts[0]); got != want {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
}

// TestReadOnlyGreeting: a session started on a read-only site was greeted with the database's
// default_transaction_read_only = off (the shim set it on only at the first request), so libpq
// with target_session_attrs=read-write, which reads that greeting, took a backup's shim for a
// master and connected; the greeting now says on, as a read-only PostgreSQL's does, and a
// promotion gives the session its own value back.
func TestReadOnlyGreeting(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	ctx := context.Background()
	conn := s.connect(t)
	if ps := conn.PgConn().ParameterStatus("default_transaction_read_only"); ps != "on" {
		t.Errorf("greeting on a read-only site: default_transaction_read_only %q, want on", ps)
	}
	psql := func(attrs string) (string, error) {
		needTool(t, "psql")
		out, err := exec.Command("psql", "-XAtc", "SELECT 1",
			fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable connect_timeout=10 target_session_attrs=%s",
				s.Addr().(*net.TCPAddr).Port, pgtest.Superuser, c.Database(), attrs)).CombinedOutput()
		return string(out), err
	}
	if out, err := psql("read-write"); err == nil {
		t.Errorf("psql with target_session_attrs=read-write connected to a read-only site: %s", out)
	}
	if out, err := psql("read-only"); err != nil {
		t.Errorf("psql with target_session_attrs=read-only, read-only site: %v %s", err, out)
	}
	s.SetMode(ModeDual, 1)
	if out, err := psql("read-write"); err != nil {
		t.Errorf("psql with target_session_attrs=read-write, dual mode: %v %s", err, out)
	}
	var got string
	if err := conn.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&got); err != nil || got != "off" {
		t.Errorf("after promotion: default_transaction_read_only %q %v, want off", got, err)
	}
	if ps := conn.PgConn().ParameterStatus("default_transaction_read_only"); ps != "off" {
		t.Errorf("after promotion: ParameterStatus %q, want off", ps)
	}
}

// replies reads messages up to ReadyForQuery and tells them, with what a comparison with
// PostgreSQL needs: rows, tags, SQLSTATEs and the status.
func (r *rawSession) replies() string {
	r.t.Helper()
	return r.readReplies("Z", false)
}

// exchange sends each request of reqs (flushed as one) and reads its replies up to
// ReadyForQuery: the last request's, as replies tells them.
func (r *rawSession) exchange(reqs [][]pgproto3.FrontendMessage) string {
	r.t.Helper()
	var got string
	for _, req := range reqs {
		for _, m := range req {
			r.fe.Send(m)
		}
		if err := r.fe.Flush(); err != nil {
			r.t.Fatal(err)
		}
		got = r.replies()
	}
	return got
}

// readReplies is replies up to a message of one of types (their type bytes), an error's
// message with its SQLSTATE when messages.
func (r *rawSession) readReplies(types string, messages bool) string {
	r.t.Helper()
	var b strings.Builder
	for {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("after %q: %v", b.String(), err)
		}
		enc, _ := m.Encode(nil)
		b.WriteByte(enc[0])
		switch m := m.(type) {
		case *pgproto3.DataRow:
			fmt.Fprintf(&b, "%q", m.Values)
		case *pgproto3.CommandComplete:
			fmt.Fprintf(&b, "(%s)", m.CommandTag)
		case *pgproto3.ErrorResponse:
			if messages {
				fmt.Fprintf(&b, "(%s %s)", m.Code, m.Message)
			} else {
				fmt.Fprintf(&b, "(%s)", m.Code)
			}
		case *pgproto3.NoticeResponse:
			fmt.Fprintf(&b, "(%s)", m.Code)
		case *pgproto3.ReadyForQuery:
			fmt.Fprintf(&b, "(%c)", m.TxStatus)
		}
		if strings.IndexByte(types, enc[0]) >= 0 {
			return b.String()
		}
		b.WriteByte(' ')
	}
}

// TestPartsBeforeFlushKeptByWrite: a portal bound, or a SET LOCAL run, in a part of an
// extended-protocol request sent before a Flush was lost when a write came after the Flush in
// the same request: to learn the transaction status for its BEGIN, the shim sent a Sync, which
// ended PostgreSQL's implicit transaction and the portal with it, so the client got 34000
// (portal does not exist) and its write was rolled back, or SHOW no longer saw the SET LOCAL.
// The shim now answers as PostgreSQL does, and the write is committed on both sides.
func TestPartsBeforeFlushKeptByWrite(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	pbe := func(portal, q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{DestinationPortal: portal}, &pgproto3.Execute{Portal: portal}}
	}
	bind := func(portal, q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{DestinationPortal: portal}}
	}
	execP1 := &pgproto3.Execute{Portal: "p1"}
	insert := pbe("", "INSERT INTO acct VALUES (1, 0)")
	join := func(ms ...[]pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
		var all []pgproto3.FrontendMessage
		for _, m := range ms {
			all = append(all, m...)
		}
		return all
	}
	cases := []struct {
		name   string
		before string                       // a simple Query first
		parts  [][]pgproto3.FrontendMessage // a Flush after each but the last, which ends with Sync
		after  string                       // a simple Query after
		wrote  int                          // dual commits through the shim
	}{
		{name: "portal, flush, write", wrote: 1, parts: [][]pgproto3.FrontendMessage{
			bind("p1", "SELECT 1"), join(insert, []pgproto3.FrontendMessage{execP1})}},
		{name: "portal, flush, write, flush", wrote: 1, parts: [][]pgproto3.FrontendMessage{
			bind("p1", "SELECT 1"), insert, {execP1}}},
		{name: "set local, flush, write, show", wrote: 1, parts: [][]pgproto3.FrontendMessage{
			pbe("", "SET LOCAL work_mem = '7MB'"), join(insert, pbe("", "SHOW work_mem"))}},
		{name: "portal in a block, flush, write", before: "BEGIN", after: "COMMIT", wrote: 1, parts: [][]pgproto3.FrontendMessage{
			bind("p1", "SELECT 1"), join(insert, []pgproto3.FrontendMessage{execP1})}},
		// The block is the client's: the shim's commit must not end it, even when no 25001
		// warning would tell.
		{name: "no warnings, portal in a block, flush, write", before: "SET client_min_messages = error; BEGIN", after: "COMMIT; RESET client_min_messages", wrote: 1,
			parts: [][]pgproto3.FrontendMessage{bind("p1", "SELECT 1"), join(insert, []pgproto3.FrontendMessage{execP1})}},
		{name: "rollback, portal, flush, write", before: "BEGIN", wrote: 1, parts: [][]pgproto3.FrontendMessage{
			join(pbe("", "ROLLBACK"), bind("p1", "SELECT 1")), join(insert, []pgproto3.FrontendMessage{execP1})}},
		{name: "error, flush, write", parts: [][]pgproto3.FrontendMessage{
			pbe("", "SELECT 1/0"), join(insert, []pgproto3.FrontendMessage{execP1})}},
	}
	run := func(r *rawSession, parts [][]pgproto3.FrontendMessage, wait bool, before, after string) string {
		var got strings.Builder
		if before != "" {
			r.fe.Send(&pgproto3.Query{String: before})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			got.WriteString(r.replies() + " | ")
		}
		for i, p := range parts {
			for _, m := range p {
				r.fe.Send(m)
			}
			if i == len(parts)-1 {
				r.fe.Send(&pgproto3.Sync{})
				break
			}
			r.fe.Send(&pgproto3.Flush{})
			if wait {
				// Read as many replies as the part has messages, or up to an error; the rest
				// come with the last part's.
				if err := r.fe.Flush(); err != nil {
					t.Fatal(err)
				}
				for range p {
					m, err := r.fe.Receive()
					if err != nil {
						t.Fatal(err)
					}
					enc, _ := m.Encode(nil)
					got.WriteByte(enc[0])
					if enc[0] == 'E' {
						break
					}
				}
				got.WriteString(" / ")
			}
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got.WriteString(r.replies())
		if after != "" {
			r.fe.Send(&pgproto3.Query{String: after})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			got.WriteString(" | " + r.replies())
		}
		fmt.Fprintf(&got, ", rows %d", rowCount(t, c, "true"))
		c.Exec(t, "DELETE FROM acct")
		return got.String()
	}
	for _, tc := range cases {
		for _, wait := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, wait %v", tc.name, wait), func(t *testing.T) {
				want := run(dialRawDSN(t, c.DSN(c.Database())), tc.parts, wait, tc.before, tc.after)
				peer.take()
				got := run(dialRaw(t, s), tc.parts, wait, tc.before, tc.after)
				if got != want {
					t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
				}
				if calls := peer.take(); tc.wrote == 0 && len(calls) != 0 {
					t.Errorf("peer calls %v, want none", calls)
				} else if tc.wrote > 0 {
					checkDual(t, calls, tc.wrote)
				}
			})
		}
	}
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d transactions left prepared", n)
	}
	if st := s.Stats(); st.CommitsPlain != 0 || st.Unwrapped != 0 {
		t.Fatalf("writes committed plainly: %+v", st)
	}
}

// cancelSleep runs pg_sleep(10) on conn and, 300 ms in, sends a CancelRequest for it on a new
// connection to the shim, with the key the shim passed through; what the sleep must end with
// is 57014 within 5 s.
func cancelSleep(t *testing.T, conn *pgx.Conn, what string) {
	t.Helper()
	ctx := context.Background()
	// The cancel request goes again every 300 ms until the statement ends: one that reaches
	// PostgreSQL before the statement does (a loaded machine: ci209) cancels nothing.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if err := conn.PgConn().CancelRequest(ctx); err != nil {
					t.Errorf("cancel request: %v", err)
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	start := time.Now()
	_, err := conn.Exec(ctx, "SELECT pg_sleep(10)")
	if pgCode(err) != "57014" || time.Since(start) > 5*time.Second {
		t.Fatalf("%s: want 57014 at once, got %v after %v", what, err, time.Since(start))
	}
}
