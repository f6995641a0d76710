package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// startServer runs serve on a loopback port; cleanup stops it and checks
// that serve returned.
func startServer(t *testing.T, o options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, o) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("serve did not return after cancel")
		}
	})
	return ln.Addr().String()
}

type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string, header []byte) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if header != nil {
		if _, err := c.Write(header); err != nil {
			t.Fatal(err)
		}
	}
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends one line and returns the reply line without its newline.
func (cl *client) do(line string) string {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, line+"\n"); err != nil {
		cl.t.Fatalf("send %q: %v", line, err)
	}
	return cl.read()
}

func (cl *client) read() string {
	cl.t.Helper()
	reply, err := cl.br.ReadString('\n')
	if err != nil {
		cl.t.Fatalf("read reply: %v (got %q)", err, reply)
	}
	return strings.TrimSuffix(reply, "\n")
}

func (cl *client) expectEOF() {
	cl.t.Helper()
	if b, err := cl.br.ReadByte(); err == nil {
		cl.t.Fatalf("want the server to close the connection, read %q", b)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		cl.t.Fatalf("want EOF, got %v", err)
	}
}

func TestCommands(t *testing.T) {
	addr := startServer(t, options{name: "s1"})
	cl := dial(t, addr, nil)
	steps := []struct{ send, want string }{
		{"PING", "PONG s1"},
		{"ping", "PONG s1"},
		{"GET k", "NIL s1"},
		{"SET k hello  world", "OK s1"},
		{"GET k", "VALUE s1 hello  world"},
		{"SET k v2\r", "OK s1"},
		{"GET k", "VALUE s1 v2"},
		{"DEL k", "OK s1"},
		{"GET k", "NIL s1"},
		{"SET k", "ERR usage: SET <k> <v> | GET <k> | DEL <k>"},
		{"GET", "ERR usage: SET <k> <v> | GET <k> | DEL <k>"},
		{"WHO", "YOU " + cl.c.LocalAddr().String() + " s1"},
		{"FLY away", "ERR unknown command"},
		{"", "ERR unknown command"},
		{"SINK -1", "ERR usage: SINK <n> | SOURCE <n>"},
		{"SOURCE x", "ERR usage: SINK <n> | SOURCE <n>"},
		{"XFER t1 a b 5", "OK s1"},
		{"XFER t1 a b 5", "ERR duplicate t1"},
		{"XFER t2 a a 5", "ERR usage: XFER <id> <from> <to> <amount>"},
		{"XFER t2 a b 0", "ERR usage: XFER <id> <from> <to> <amount>"},
		{"XFER t2 a b", "ERR usage: XFER <id> <from> <to> <amount>"},
		{"QUIT", "BYE"},
	}
	for _, s := range steps {
		if got := cl.do(s.send); got != s.want {
			t.Errorf("%q: got %q, want %q", s.send, got, s.want)
		}
	}
	cl.expectEOF()

	// Data is shared across connections.
	a, b := dial(t, addr, nil), dial(t, addr, nil)
	if got := a.do("SET shared 42"); got != "OK s1" {
		t.Fatalf("SET: %q", got)
	}
	if got := b.do("GET shared"); got != "VALUE s1 42" {
		t.Fatalf("GET from another connection: %q", got)
	}
}

func TestBulk(t *testing.T) {
	addr := startServer(t, options{name: "bulk"})
	cl := dial(t, addr, nil)
	for _, n := range []int{0, 1, 4095, 3<<20 + 17} {
		// SINK: the payload follows the line in the same write, so the
		// server must take it from its line buffer and then the socket.
		payload := bytes.Repeat([]byte{'x'}, n)
		msg := append([]byte(fmt.Sprintf("SINK %d\n", n)), payload...)
		if _, err := cl.c.Write(append(msg, "PING\n"...)); err != nil {
			t.Fatal(err)
		}
		if got := cl.read(); got != "OK bulk" {
			t.Fatalf("SINK %d: %q", n, got)
		}
		if got := cl.read(); got != "PONG bulk" {
			t.Fatalf("PING after SINK %d: %q", n, got)
		}

		if got := cl.do(fmt.Sprintf("SOURCE %d", n)); got != fmt.Sprintf("DATA %d", n) {
			t.Fatalf("SOURCE %d: %q", n, got)
		}
		got, err := io.ReadAll(io.LimitReader(cl.br, int64(n)))
		if err != nil || len(got) != n {
			t.Fatalf("SOURCE %d: read %d bytes, err %v", n, len(got), err)
		}
		if got := cl.do("PING"); got != "PONG bulk" {
			t.Fatalf("PING after SOURCE %d: %q (extra bytes sent?)", n, got)
		}
	}
}

func TestLongLine(t *testing.T) {
	addr := startServer(t, options{name: "ll"})

	ok := dial(t, addr, nil)
	if got := ok.do(strings.Repeat("a", maxLine)); got != "ERR unknown command" {
		t.Fatalf("line of exactly %d bytes: %q", maxLine, got)
	}
	if got := ok.do(strings.Repeat("b", maxLine) + "\r"); got != "ERR unknown command" {
		t.Fatalf("line of exactly %d bytes plus CRLF: %q", maxLine, got)
	}

	bystander := dial(t, addr, nil)
	long := dial(t, addr, nil)
	if got := long.do("SET k " + strings.Repeat("v", maxLine)); got != "ERR line too long" {
		t.Fatalf("long line: %q", got)
	}
	long.expectEOF()

	// A long line with no newline at all is refused too, without waiting for one.
	endless := dial(t, addr, nil)
	if _, err := endless.c.Write(bytes.Repeat([]byte{'z'}, maxLine+4096)); err != nil {
		t.Fatal(err)
	}
	if got := endless.read(); got != "ERR line too long" {
		t.Fatalf("endless line: %q", got)
	}
	endless.expectEOF()

	if got := bystander.do("PING"); got != "PONG ll" {
		t.Fatalf("other connection after a long line: %q", got)
	}
}

func TestProxyHeader(t *testing.T) {
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4242}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 7000}
	header := func(v byte) []byte {
		b, err := proxyproto.HeaderProxyFromAddrs(v, src, dst).Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		mode   string
		header []byte
		ok     bool
	}{
		{proxyV1, header(1), true},
		{proxyV1, header(2), false},
		{proxyV2, header(2), true},
		{proxyV2, header(1), false},
		{proxyAny, header(1), true},
		{proxyAny, header(2), true},
		{proxyAny, nil, false},
		{proxyOff, header(1), false}, // the header is just an unknown command
	} {
		name := fmt.Sprintf("%s/%d-byte-header", tc.mode, len(tc.header))
		t.Run(name, func(t *testing.T) {
			addr := startServer(t, options{name: "px", proxy: tc.mode})
			cl := dial(t, addr, tc.header)
			if tc.ok {
				// The header and the first command arrive in separate writes
				// here; below they share one.
				if got, want := cl.do("WHO"), "YOU 203.0.113.7:4242 px"; got != want {
					t.Fatalf("WHO: got %q, want %q", got, want)
				}
				return
			}
			if _, err := io.WriteString(cl.c, "WHO\n"); err != nil {
				t.Fatal(err)
			}
			if tc.mode == proxyOff {
				if tc.header != nil && string(tc.header[:5]) == "PROXY" {
					if got := cl.read(); got != "ERR unknown command" {
						t.Fatalf("PROXY line with -proxy off: %q", got)
					}
				}
				if got, want := cl.read(), "YOU "+cl.c.LocalAddr().String()+" px"; got != want {
					t.Fatalf("WHO with -proxy off: got %q, want %q", got, want)
				}
				return
			}
			cl.expectEOF()
		})
	}

	t.Run("header-and-command-in-one-write", func(t *testing.T) {
		addr := startServer(t, options{name: "px", proxy: proxyAny})
		for _, v := range []byte{1, 2} {
			cl := dial(t, addr, append(header(v), "WHO\nPING\n"...))
			if got := cl.read(); got != "YOU 203.0.113.7:4242 px" {
				t.Fatalf("v%d WHO: %q", v, got)
			}
			if got := cl.read(); got != "PONG px" {
				t.Fatalf("v%d PING: %q", v, got)
			}
		}
	})

	t.Run("v2-local-keeps-socket-address", func(t *testing.T) {
		addr := startServer(t, options{name: "px", proxy: proxyV2})
		local, err := (&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}).Format()
		if err != nil {
			t.Fatal(err)
		}
		cl := dial(t, addr, local)
		if got, want := cl.do("WHO"), "YOU "+cl.c.LocalAddr().String()+" px"; got != want {
			t.Fatalf("WHO after LOCAL header: got %q, want %q", got, want)
		}
	})
}

func TestManyConnectionsAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, options{name: "many"}) }()

	const n = 300
	conns := make([]*client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range conns {
		conns[i] = dial(t, ln.Addr().String(), nil)
		wg.Go(func() {
			cl := conns[i]
			key := fmt.Sprintf("k%d", i)
			if _, err := fmt.Fprintf(cl.c, "SET %s %d\nGET %s\n", key, i, key); err != nil {
				errs <- err
				return
			}
			for _, want := range []string{"OK many", fmt.Sprintf("VALUE many %d", i)} {
				got, err := cl.br.ReadString('\n')
				if err != nil || got != want+"\n" {
					errs <- fmt.Errorf("conn %d: got %q, %v; want %q", i, got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Cancelling closes the listener and every idle connection.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	for _, cl := range conns[:5] {
		cl.expectEOF()
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("listener still accepts after shutdown")
	}
}

// openStore opens the database at dsn as the server does at start, its tables made, and closes
// it when t ends.
func openStore(t *testing.T, dsn string) *pgStore {
	t.Helper()
	st, err := openPGStore(dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestPostgresStore(t *testing.T) {
	cluster := pgtest.Start(t)
	dsn := cluster.DSN(cluster.Database())

	// Two servers on one database, as two sites' servers would share a
	// replicated one: each sees what the other wrote. Opening twice also
	// proves CREATE TABLE IF NOT EXISTS is idempotent.
	var addrs []string
	for _, name := range []string{"pg1", "pg2"} {
		addrs = append(addrs, startServer(t, options{name: name, store: openStore(t, dsn)}))
	}
	a, b := dial(t, addrs[0], nil), dial(t, addrs[1], nil)
	for _, s := range []struct {
		cl         *client
		send, want string
	}{
		{a, "GET acct", "NIL pg1"},
		{a, "SET acct 100 EUR", "OK pg1"},
		{b, "GET acct", "VALUE pg2 100 EUR"},
		{b, "SET acct 90 EUR", "OK pg2"},
		{a, "GET acct", "VALUE pg1 90 EUR"},
		{a, "SET other x", "OK pg1"},
		{b, "DEL other", "OK pg2"},
		{a, "GET other", "NIL pg1"},
		{a, "XFER t1 alice bob 30", "OK pg1"},
		{b, "XFER t2 bob alice 5", "OK pg2"},
		{b, "XFER t1 carol bob 1", "ERR duplicate t1"},
	} {
		if got := s.cl.do(s.send); got != s.want {
			t.Fatalf("%q: got %q, want %q", s.send, got, s.want)
		}
	}

	db := cluster.Open(t, cluster.Database())
	var v string
	var fresh bool
	err := db.QueryRow(`SELECT v, updated > now() - interval '1 minute' FROM wire_kv WHERE k = 'acct'`).Scan(&v, &fresh)
	if err != nil || v != "90 EUR" || !fresh {
		t.Fatalf("wire_kv row: v=%q fresh=%v err=%v", v, fresh, err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM wire_kv`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("wire_kv has %d rows (err %v), want 1", n, err)
	}

	var alice, bob, ledger int64
	err = db.QueryRow(`SELECT (SELECT balance FROM wire_accounts WHERE id = 'alice'),
		(SELECT balance FROM wire_accounts WHERE id = 'bob'), (SELECT count(*) FROM wire_ledger)`).Scan(&alice, &bob, &ledger)
	if err != nil || alice != -25 || bob != 25 || ledger != 2 {
		t.Fatalf("after transfers: alice %d, bob %d, %d ledger rows (err %v); want -25, 25, 2", alice, bob, ledger, err)
	}

	// With the database gone the server answers with an error and keeps the
	// connection; it recovers once the database is back.
	cluster.Kill()
	if got := a.do("GET acct"); got != "ERR store failed" {
		t.Fatalf("GET with the database down: %q", got)
	}
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := a.do("GET acct")
		if got == "VALUE pg1 90 EUR" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET after restart: %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresManyClients: a burst of operators, more than the database takes sessions (as
// through Tandem's shim, which serves fewer than max_connections), is served in full: the
// server queues their commands for its own connections rather than open a database session
// for each and answer those the database refuses (too many clients) with ERR store failed.
func TestPostgresManyClients(t *testing.T) {
	cluster := pgtest.Start(t) // max_connections = 100
	addr := startServer(t, options{name: "many", store: openStore(t, cluster.DSN(cluster.Database()))})

	// Every SET waits on this lock until all the clients' commands are in.
	db := cluster.Open(t, cluster.Database())
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`LOCK TABLE wire_kv IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	// Its own session, taken before the server's could use up the database's.
	poll, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Close()
	const n = 150
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, addr, nil)
		if _, err := fmt.Fprintf(clients[i].c, "SET k%d %d\n", i, i); err != nil {
			t.Fatal(err)
		}
	}
	// Until the server's sessions waiting on the lock stop growing: it has taken every command
	// it will take before the lock goes.
	waiting, same := -1, 0
	for deadline := time.Now().Add(30 * time.Second); same < 10 && time.Now().Before(deadline); {
		var w int
		if err := poll.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO wire_kv%'`).Scan(&w); err != nil {
			t.Fatal(err)
		}
		if w == waiting && w > 0 {
			same++
		} else {
			waiting, same = w, 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d of the server's sessions waited on the lock", waiting)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	failed := 0
	for i, cl := range clients {
		cl.c.SetDeadline(time.Now().Add(20 * time.Second))
		if got := cl.read(); got != "OK many" {
			if failed++; failed <= 3 {
				t.Errorf("client %d: SET -> %q, want OK many", i, got)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d clients' SET failed", failed, n)
	}
	var rows int
	if err := poll.QueryRowContext(t.Context(), `SELECT count(*) FROM wire_kv`).Scan(&rows); err != nil || rows != n {
		t.Fatalf("wire_kv holds %d rows (err %v), want %d", rows, err, n)
	}
}

// TestBadText: a key, value, transfer id or account that is no text PostgreSQL stores (a NUL
// byte, bytes that are not UTF-8) is refused with an ERR that says so, by the in-memory store
// as by PostgreSQL's, and the connection goes on.
func TestBadText(t *testing.T) {
	stores := map[string]func(t *testing.T) store{
		"memory": func(t *testing.T) store { return newMemStore() },
		"postgres": func(t *testing.T) store {
			cluster := pgtest.Start(t)
			return openStore(t, cluster.DSN(cluster.Database()))
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			addr := startServer(t, options{name: "bt", store: open(t)})
			cl := dial(t, addr, nil)
			for _, s := range []struct{ send, want string }{
				{"SET k\x00 v", "ERR key holds a NUL byte"},
				{"SET k v\x00w", "ERR value holds a NUL byte"},
				{"SET k\xff v", "ERR key is not UTF-8 text"},
				{"SET k v\xc3", "ERR value is not UTF-8 text"},
				{"GET k\x00", "ERR key holds a NUL byte"},
				{"DEL k\xfe", "ERR key is not UTF-8 text"},
				{"XFER t\x00 a b 1", "ERR id holds a NUL byte"},
				{"XFER t a\xff b 1", "ERR from is not UTF-8 text"},
				{"XFER t a b\x00 1", "ERR to holds a NUL byte"},
				{"PING", "PONG bt"},
				{"SET k välue", "OK bt"},
				{"GET k", "VALUE bt välue"},
				{"XFER t a b 1", "OK bt"},
			} {
				if got := cl.do(s.send); got != s.want {
					t.Errorf("%q: got %q, want %q", s.send, got, s.want)
				}
			}
		})
	}
}

// TestProxyHeaderRefusedPromptly: with a PROXY header required, a client whose first bytes
// cannot begin one (a plain PING, which starts as "PROXY" does) is closed at once, not after
// the header timeout; one that sent only a signature's first byte is still waited for.
func TestProxyHeaderRefusedPromptly(t *testing.T) {
	for _, mode := range []string{proxyV1, proxyV2, proxyAny} {
		t.Run(mode, func(t *testing.T) {
			addr := startServer(t, options{name: "px", proxy: mode})
			for _, send := range []string{"PING\n", "PI", "\r\nX"} {
				cl := dial(t, addr, []byte(send))
				start := time.Now()
				cl.c.SetDeadline(time.Now().Add(headerTimeout / 2))
				cl.expectEOF()
				if d := time.Since(start); d > 2*time.Second {
					t.Errorf("%q: closed after %v", send, d.Round(time.Millisecond))
				}
			}
			// "P" may still be the start of a v1 header, "\r" of a v2 one.
			for _, send := range []string{"P", "\r"} {
				cl := dial(t, addr, []byte(send))
				cl.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if _, err := cl.br.ReadByte(); !isTimeout(err) {
					t.Errorf("%q: want the server to wait for the rest of a header, read: %v", send, err)
				}
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestProxyHeaderSplit: a v1 header that arrives in pieces (a sender may split it, and the
// spec asks receivers to be tolerant) is read whole, as a v2 one is.
func TestProxyHeaderSplit(t *testing.T) {
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4242}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 7000}
	addr := startServer(t, options{name: "px", proxy: proxyAny})
	for _, v := range []byte{1, 2} {
		b, err := proxyproto.HeaderProxyFromAddrs(v, src, dst).Format()
		if err != nil {
			t.Fatal(err)
		}
		cl := dial(t, addr, b[:14])
		time.Sleep(50 * time.Millisecond)
		if _, err := cl.c.Write(b[14:]); err != nil {
			t.Fatal(err)
		}
		if got, want := cl.do("WHO"), "YOU 203.0.113.7:4242 px"; got != want {
			t.Errorf("v%d header in two writes: WHO: got %q, want %q", v, got, want)
		}
	}
}

// TestPostgresDownAtStart: a server started while its database is unreachable (its sidecar's
// shim not yet up, say) serves anyway, answering ERR to the commands that need the database as
// it does when the database goes away later, and creates its missing tables once it is back.
func TestPostgresDownAtStart(t *testing.T) {
	cluster := pgtest.Start(t)
	cluster.Kill()
	st, err := openPGStore(cluster.DSN(cluster.Database()))
	if err != nil {
		t.Fatalf("open with the database down: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.prepare(t.Context()); err == nil {
		t.Fatal("prepare with the database down: no error")
	}
	addr := startServer(t, options{name: "late", store: st})
	cl := dial(t, addr, nil)
	if got := cl.do("PING"); got != "PONG late" {
		t.Fatalf("PING with the database down: %q", got)
	}
	if got := cl.do("SET k v"); got != "ERR store failed" {
		t.Fatalf("SET with the database down: %q", got)
	}
	if err := cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ send, want string }{
		{"SET k v", "OK late"},
		{"GET k", "VALUE late v"},
		{"XFER t1 a b 3", "OK late"},
	} {
		if got := cl.do(s.send); got != s.want {
			t.Fatalf("%q once the database is up: got %q, want %q", s.send, got, s.want)
		}
	}

	// A connection string no client can read is still refused at start.
	if st, err := openPGStore("postgres://%zz@host/db"); err == nil {
		st.Close()
		t.Error("open with an unreadable connection string: no error")
	}
}

// bothStores runs test against a server on each store: in memory, and on a fresh database.
func bothStores(t *testing.T, test func(t *testing.T, cl *client)) {
	cluster := pgtest.Start(t)
	for _, name := range []string{"memory", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var st store = newMemStore()
			if name == "postgres" {
				st = openStore(t, cluster.DSN(cluster.Database()))
			}
			test(t, dial(t, startServer(t, options{name: "sa", store: st}), nil))
		})
	}
}

// TestKeyLength: a key (or a transfer id or account) longer than PostgreSQL's index takes is
// refused alike by both stores, saying so, rather than stored in memory and answered ERR store
// failed by PostgreSQL; a value's length is bounded only by the line's.
func TestKeyLength(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(n int) string { // letters no compressor folds much
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a' + byte(rng.IntN(26))
		}
		return string(b)
	}
	bothStores(t, func(t *testing.T, cl *client) {
		tooLong := func(what string) string { return fmt.Sprintf("ERR %s longer than %d bytes", what, maxKey) }
		for _, s := range []struct{ send, want string }{
			{"SET " + text(maxKey) + " v", "OK sa"},
			{"SET " + text(6000) + " v", tooLong("key")},
			{"GET " + text(maxKey+1), tooLong("key")},
			{"DEL " + text(maxKey+1), tooLong("key")},
			{"SET k " + text(maxLine-6), "OK sa"},
			{"XFER " + text(maxKey+1) + " a b 1", tooLong("id")},
			{"XFER t1 " + text(6000) + " b 1", tooLong("from")},
			{"XFER t2 a " + text(maxKey+1) + " 1", tooLong("to")},
			{"XFER " + text(maxKey) + " " + text(maxKey) + " " + text(maxKey) + " 1", "OK sa"},
		} {
			if got := cl.do(s.send); got != s.want {
				t.Errorf("%.40q: got %.60q, want %q", s.send, got, s.want)
			}
		}
	})
}

// TestBalanceOutOfRange: a transfer that would take a balance beyond a bigint is refused alike
// by both stores, saying so (the in-memory one wrapped it round), and changes nothing.
func TestBalanceOutOfRange(t *testing.T) {
	bothStores(t, func(t *testing.T, cl *client) {
		for _, s := range []struct{ send, want string }{
			{"XFER t1 a b 9223372036854775807", "OK sa"},
			{"XFER t2 a b 1", "ERR balance out of range"},
			{"XFER t3 a c 2", "ERR balance out of range"},
			{"XFER t2 b a 1", "OK sa"}, // t2 was not used up by the refused transfer
			{"XFER t4 c a 5", "OK sa"},
			{"XFER t5 b a 4", "OK sa"},
		} {
			if got := cl.do(s.send); got != s.want {
				t.Errorf("%q: got %q, want %q", s.send, got, s.want)
			}
		}
	})
}

// TestDSNErrorHidesPassword: a -dsn lib/pq cannot read stops the server with lib/pq's error,
// which quoted the string, or a piece of it, password and all: net/url's error on a URL
// (postgres://u:s3cret@host/db%zz, or a password holding an unencoded '/', read as a port),
// and the words before a missing '=' (the rest of an unquoted password with a space).
func TestDSNErrorHidesPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret@host/db%zz",
		"postgres://u:s3cret@host:abc/db",
		"postgres://u:s3c/ret@host/db",
		"postgres://u@host/db%zz?password=s3cret",
		"host=h password=two s3cret",
		" postgres://u:s3cret@host/db",
	} {
		st, err := openPGStore(dsn)
		if err == nil {
			st.Close()
			t.Errorf("%q: no error", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3c") {
			t.Errorf("%q: the error shows the password: %v", dsn, err)
		}
	}
}

// TestPrepareWaitBounded: prepare held its mutex across its connection to the database, which
// a database that takes the connection and never answers (a stalled server, a shim not ready)
// holds until the first command's own deadline; every command behind it waited for that mutex
// past its own storeTimeout, and (sync.Mutex not being fair) possibly for more than one holder
// after another. A command waits for a prepare in progress no longer than its own context.
func TestPrepareWaitBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // taken, never answered
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	st, err := openPGStore("postgres://u@" + ln.Addr().String() + "/db?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		first <- st.prepare(ctx)
	}()
	time.Sleep(200 * time.Millisecond) // the first holds the prepare, dialled
	second := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		second <- st.prepare(ctx)
	}()
	select {
	case err := <-second:
		if err == nil {
			t.Error("prepare on a database that never answers: no error")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("prepare with 300ms behind one on a stalled database: still waiting after 3s; want it to return at its own deadline")
	}
	select {
	case err := <-first:
		if err == nil {
			t.Error("the first prepare on a database that never answers: no error")
		}
	case <-time.After(storeTimeout + 5*time.Second):
		t.Fatalf("the first prepare on a database that never answers: still waiting after %v", storeTimeout+5*time.Second)
	}
}

// TestProxyHeaderNoSpaceRefusedPromptly: a v1 header starts "PROXY " (the spec's signature,
// its space included); readProxyHeader took "PROXY" for the whole of it, and a client that
// sent "PROXYZ" (no header, and a command that is not one either) was held for the rest of a
// line that could not be a header, until the header timeout.
func TestProxyHeaderNoSpaceRefusedPromptly(t *testing.T) {
	for _, mode := range []string{proxyV1, proxyAny} {
		t.Run(mode, func(t *testing.T) {
			addr := startServer(t, options{name: "px", proxy: mode})
			cl := dial(t, addr, []byte("PROXYZ"))
			start := time.Now()
			cl.c.SetDeadline(time.Now().Add(headerTimeout / 2))
			cl.expectEOF()
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%q: closed after %v", "PROXYZ", d.Round(time.Millisecond))
			}
			// "PROXY" may still be the start of a header.
			cl = dial(t, addr, []byte("PROXY"))
			cl.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := cl.br.ReadByte(); !isTimeout(err) {
				t.Errorf("%q: want the server to wait for the rest of a header, read: %v", "PROXY", err)
			}
		})
	}
}

// fromListener hands out ln's connections as if they came from addr: a peer beyond loopback,
// which a test on loopback cannot dial from.
type fromListener struct {
	net.Listener
	addr net.Addr
}

func (l fromListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return fromConn{c, l.addr}, nil
}

type fromConn struct {
	net.Conn
	addr net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.addr }

// TestProxyHeaderUntrustedPeer: a PROXY header is honoured only from a trusted peer, loopback
// unless told otherwise, and a connection from another is refused: the server took a header
// from any peer, so that a client reaching it directly could claim any address (WHO answered
// the header's).
func TestProxyHeaderUntrustedPeer(t *testing.T) {
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4242}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 7000}
	header, err := proxyproto.HeaderProxyFromAddrs(2, src, dst).Format()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, fromListener{ln, &net.TCPAddr{IP: net.ParseIP("192.0.2.9"), Port: 5555}}, options{name: "px", proxy: proxyAny})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	cl := dial(t, ln.Addr().String(), header)
	io.WriteString(cl.c, "WHO\n") // fails if the connection was refused already
	if line, err := cl.br.ReadString('\n'); err == nil {
		t.Fatalf("a header from 192.0.2.9, not trusted: got %q, want the connection refused", line)
	}
}

// TestProxyHeaderTrustedList: with -proxy-trusted given, a header from a peer in it is
// honoured and a connection from another, loopback too, refused; the flag takes CIDRs and
// addresses and refuses what is neither.
func TestProxyHeaderTrustedList(t *testing.T) {
	src := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4242}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 7000}
	header, err := proxyproto.HeaderProxyFromAddrs(1, src, dst).Format()
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := parseTrusted("127.0.0.2, 10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, options{name: "px", proxy: proxyAny, trusted: trusted})
	dialFrom := func(from string) *client {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(append(header, "WHO\n"...)) // fails if the connection was refused already
		return &client{t: t, c: c, br: bufio.NewReader(c)}
	}
	if got, want := dialFrom("127.0.0.2").read(), "YOU 203.0.113.7:4242 px"; got != want {
		t.Errorf("from 127.0.0.2, trusted: WHO = %q, want %q", got, want)
	}
	if line, err := dialFrom("127.0.0.1").br.ReadString('\n'); err == nil {
		t.Errorf("from 127.0.0.1, not trusted: got %q, want the connection refused", line)
	}

	def, err := parseTrusted(defaultTrusted)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "127.9.9.9:1": true, "[::1]:1": true, "[::ffff:127.0.0.1]:1": true, "192.0.2.9:1": false, "[2001:db8::1]:1": false} {
		if got := trustedPeer(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr)), def); got != want {
			t.Errorf("default: %s trusted = %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"", "10.0.0.0/33", "db.example", "10.0.0.1,"} {
		if _, err := parseTrusted(bad); (err == nil) != (bad == "10.0.0.1,") {
			t.Errorf("parseTrusted(%q): %v", bad, err)
		}
	}
}
