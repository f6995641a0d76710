package txshim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// testCluster starts a cluster for one test (about a second); tests that need the tandem schema
// create it with the contract's SQL.
func testCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	return pgtest.Start(t)
}

type testShim struct {
	*Shim
	c *pgtest.Cluster
}

func startShim(t *testing.T, c *pgtest.Cluster, opts Options, mode Mode, term uint64) *testShim {
	t.Helper()
	return startShimDSN(t, c, c.DSN(c.Database()), opts, mode, term)
}

// startShimDSN is startShim with the shim's local database reached through dsn; tweaks change
// the shim's configuration.
func startShimDSN(t *testing.T, c *pgtest.Cluster, dsn string, opts Options, mode Mode, term uint64, tweaks ...func(*config.TxShim)) *testShim {
	t.Helper()
	cfg := config.TxShim{
		Listen:        "127.0.0.1:0",
		LocalDSN:      dsn,
		PeerDown:      config.PeerDownContinue,
		MaxMessage:    1 << 20,
		CommitTimeout: 5 * time.Second,
	}
	for _, f := range tweaks {
		f(&cfg)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if opts.Site == "" {
		opts.Site = "site1"
	}
	s, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.SetMode(mode, term)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	// Runs before the shim stops (cleanups run last-in first-out): a failed test logs what the
	// shim's goroutines and the local database were doing, to explain a hang.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shim goroutines:\n%s\nsessions:\n%s\nlocal database:\n%s", shimStacks(), s.sessionQueues(), pgtest.Activity(dsn))
			if sh, ok := opts.Peer.(*Shipper); ok {
				t.Logf("peer database:\n%s", pgtest.Activity(sh.cfg.PeerDSN))
			}
		}
	})
	return &testShim{Shim: s, c: c}
}

// sessionQueues describes each session's status and the requests it awaits replies to.
func (s *Shim) sessionQueues() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for sess := range s.sessions {
		sess.mu.Lock()
		fmt.Fprintf(&b, "  session %s: status %q, %d awaited:", sess.user, sess.status, len(sess.queue))
		for _, p := range sess.queue {
			fmt.Fprintf(&b, " {seq %d fwd %v fwdRFQ %v ownBegin %v capture %v}", p.seq, p.fwd, p.fwdRFQ, p.ownBegin, p.res != nil)
		}
		b.WriteString("\n")
		sess.mu.Unlock()
	}
	return b.String()
}

// shimStacks returns the stacks of the goroutines running this package's code.
func shimStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "tandem/txshim.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func (s *testShim) dsn(user string) string {
	port := s.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, port, s.c.Database())
}

func (s *testShim) connect(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser))
	if err != nil {
		t.Fatalf("connect through shim: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestRelayBasic(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	conn := s.connect(t)
	ctx := context.Background()
	var n int
	if err := conn.QueryRow(ctx, "SELECT 41 + $1::int", 1).Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: %d, %v", n, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count: %d, %v", n, err)
	}
	st := s.Stats()
	t.Logf("stats %+v", st)
	if st.CommitsSolo < 2 {
		t.Fatalf("expected the implicit writes to commit solo: %+v", st)
	}
}

func TestStartupNegotiation(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{MaxSessions: 2}, ModeSolo, 0)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	one := make([]byte, 1)
	for _, req := range []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}, &pgproto3.SSLRequest{}} {
		b, _ := req.Encode(nil)
		conn.Write(b)
		if _, err := io.ReadFull(conn, one); err != nil || one[0] != 'N' {
			t.Fatalf("%T answered %q, %v", req, one, err)
		}
	}
	// A client asking for protocol 3.2 and an option is told the shim speaks 3.0.
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32,
		Parameters: map[string]string{"user": pgtest.Superuser, "database": c.Database(), "_pq_.x": "1", "application_name": "negotiation"}})
	fe.Flush()
	var types []string
	var npv *pgproto3.NegotiateProtocolVersion
	appName := ""
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", types, err)
		}
		types = append(types, fmt.Sprintf("%T", m))
		switch m := m.(type) {
		case *pgproto3.NegotiateProtocolVersion:
			npv = &pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: m.NewestMinorProtocol, UnrecognizedOptions: append([]string{}, m.UnrecognizedOptions...)}
		case *pgproto3.ParameterStatus:
			if m.Name == "application_name" {
				appName = m.Value
			}
		}
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			break
		}
	}
	if npv == nil || npv.NewestMinorProtocol != codeProtocol3 || len(npv.UnrecognizedOptions) != 1 || npv.UnrecognizedOptions[0] != "_pq_.x" {
		t.Fatalf("negotiation: %+v (messages %v)", npv, types)
	}
	if appName != "negotiation" {
		t.Fatalf("application_name passed to the database as %q", appName)
	}
	// MaxSessions = 2: a second session fits, a third is refused with 53300.
	second := s.connect(t)
	_ = second
	_, err = pgx.Connect(context.Background(), s.dsn(pgtest.Superuser))
	if pgCode(err) != "53300" {
		t.Fatalf("third session: want 53300, got %v", err)
	}
}

func TestServeStopsEverything(t *testing.T) {
	c := testCluster(t)
	cfg := config.TxShim{Listen: "127.0.0.1:0", LocalDSN: c.DSN(c.Database()), CommitTimeout: time.Second}
	before := runtime.NumGoroutine()
	s, err := New(cfg, Options{Site: "site1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeSolo, 0)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	ts := &testShim{Shim: s, c: c}
	var raws []*rawSession
	for i := 0; i < 3; i++ {
		raws = append(raws, dialRaw(t, ts))
	}
	raws[0].query("BEGIN") // one session inside a transaction
	if st := s.Stats(); st.SessionsInTx != 1 {
		t.Fatalf("sessions in a transaction %d, want 1", st.SessionsInTx)
	}
	// One connection that never finishes its startup.
	idle, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if st := s.Stats(); st.SessionsActive != 3 {
		t.Fatalf("active %d, want 3", st.SessionsActive)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, r := range raws {
		if _, err := r.fe.Receive(); err == nil {
			t.Fatal("session still open after Serve returned")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Serve, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	if st := s.Stats(); st.SessionsActive != 0 || st.SessionsTotal != 3 || st.SessionsInTx != 0 {
		t.Fatalf("stats after stop %+v", st)
	}
}

// TestBackendPasswordAuth: the shim's sessions authenticate to the local database with the
// DSN's credentials by md5 and by SCRAM-SHA-256, a wrong password ends the client's session
// with the database's error, and the password never reaches the log.
func TestBackendPasswordAuth(t *testing.T) {
	t.Parallel()
	const pw = "s3cret-pw"
	for _, method := range []string{"md5", "scram-sha-256"} {
		t.Run(method, func(t *testing.T) {
			c := pgtest.Start(t, pgtest.WithPasswordUser("app", pw, method))
			var logged bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, &slog.HandlerOptions{Level: slog.LevelDebug}))
			for _, tc := range []struct {
				pass string
				ok   bool
			}{{pw, true}, {"wrong", false}} {
				ts := startShimDSN(t, c, c.UserDSN("app", tc.pass, c.Database()), Options{Logger: logger}, ModeSolo, 0)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				conn, err := pgx.Connect(ctx, ts.dsn("app"))
				if tc.ok {
					if err != nil {
						t.Fatalf("connect through the shim with the right password: %v", err)
					}
					var user string
					if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
						t.Fatalf("current_user %q, %v", user, err)
					}
					conn.Close(ctx)
				} else if err == nil || !strings.Contains(err.Error(), "28P01") {
					t.Fatalf("connect with a wrong DSN password: %v, want 28P01 from the database", err)
				}
				cancel()
			}
			mu.Lock()
			defer mu.Unlock()
			if strings.Contains(logged.String(), pw) {
				t.Fatalf("the password reached the log:\n%s", logged.String())
			}
		})
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWentSolo: the shim tells whether it may have committed alone in a term since it was last
// dual in it (gossip's split-brain check asks): once a session read the mode solo in that term,
// not merely once the mode was set.
func TestWentSolo(t *testing.T) {
	t.Parallel()
	s, err := New(config.TxShim{Listen: "127.0.0.1:0", LocalDSN: "postgres://u@127.0.0.1:1/db", MaxMessage: 1 << 20,
		CommitTimeout: time.Second, PeerDown: config.PeerDownContinue}, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	session := func() { s.mode.Load() } // what a session does before its work
	steps := []struct {
		do   func()
		term uint64
		want bool
	}{
		{func() { s.SetMode(ModeDual, 1) }, 1, false},
		{session, 1, false},
		{func() { s.SetMode(ModeSolo, 1) }, 1, false}, // set, but no session saw it
		{func() { s.Mode() }, 1, false},               // the shim's own read
		{session, 1, true},
		{func() { s.SwitchMode(ModeSolo, ModeDual, 1) }, 1, false}, // caught up
		{func() { s.SwitchMode(ModeDual, ModeSolo, 1) }, 1, false},
		{session, 1, true},
		{func() { s.SetMode(ModeReadOnly, 1) }, 1, true}, // stepped down after a session saw solo
		{func() { s.SetMode(ModeSolo, 2) }, 2, false},
		{func() { s.SetMode(ModeReadOnly, 2) }, 2, false}, // a failed promotion: nobody saw it solo
		{session, 2, false},
		{func() { s.SetMode(ModeSolo, 3); session() }, 3, true},
		{func() {}, 1, true},
		{func() { s.SetMode(ModeDual, 3) }, 3, false},
	}
	for i, st := range steps {
		st.do()
		if got := s.WentSolo(st.term); got != st.want {
			t.Errorf("step %d: WentSolo(%d) = %v, want %v", i, st.term, got, st.want)
		}
	}
}

// TestWentSoloSessions: with real sessions, a shim set to solo mode and back to read-only (a
// promotion that failed) with no client work in between says it committed nothing alone; a
// write transaction open when the mode turned solo, which then commits alone, and a write in
// solo mode each make it say yes.
func TestWentSoloSessions(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := s.connect(t), s.connect(t)
	if _, err := a.Exec(ctx, "SELECT 1"); err != nil { // sessions idle in read-only mode
		t.Fatal(err)
	}

	// A failed promotion: solo, then read-only again, while the sessions stay idle.
	s.SetMode(ModeSolo, 2)
	s.SetMode(ModeReadOnly, 2)
	if s.WentSolo(2) {
		t.Fatal("term 2: set solo and back with no client work in between, but WentSolo says yes")
	}

	// A write transaction under way when the mode turns solo commits alone: its write made
	// while dual, its commit once solo. (A client cannot make a transaction read-write in
	// read-only mode, TestReadOnlyClientMadeReadWrite.)
	s.SetMode(ModeDual, 3)
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO acct VALUES (1, 10)"); err != nil {
		t.Fatal(err)
	}
	s.SetMode(ModeSolo, 3)
	if s.WentSolo(3) {
		t.Fatal("term 3: WentSolo says yes before the write made while dual commits")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit of the write made while dual, after the switch to solo: %v", err)
	}
	s.SetMode(ModeReadOnly, 3)
	if n := rowCount(t, c, "id = 1"); n != 1 || !s.WentSolo(3) {
		t.Fatalf("term 3: row committed %v, WentSolo %v: want yes, yes", n == 1, s.WentSolo(3))
	}

	// A write in solo mode, from a session that was idle when the mode turned.
	s.SetMode(ModeSolo, 4)
	if s.WentSolo(4) {
		t.Fatal("term 4: WentSolo says yes before any client work")
	}
	if _, err := b.Exec(ctx, "INSERT INTO acct VALUES (2, 20)"); err != nil {
		t.Fatal(err)
	}
	if n := rowCount(t, c, "id = 2"); n != 1 || !s.WentSolo(4) || s.Stats().CommitsSolo != 2 {
		t.Fatalf("term 4: row committed %v, WentSolo %v, stats %+v: want yes, yes, 2 solo commits", n == 1, s.WentSolo(4), s.Stats())
	}
	// Caught up: the peer has everything again.
	s.SetMode(ModeDual, 4)
	if s.WentSolo(4) {
		t.Fatal("term 4: WentSolo says yes after the shim turned dual")
	}
}

// TestLexerUnsafeSettings: a session cannot run with settings under which the lexer misreads
// where statements end — standard_conforming_strings off, a client-only encoding — set at
// startup or later: a COMMIT hidden from the lexer committed a write in read-only mode.
func TestLexerUnsafeSettings(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeReadOnly, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// PostgreSQL reads 'a\'' as one string with standard_conforming_strings off, and 0x95 0x5c
	// as one SJIS character; the lexer saw a string running to the end, and no COMMIT.
	scsOff := `SELECT 'a\''; COMMIT; SELECT 1 --'`
	sjis := "SELECT E'\x95\x5c'; COMMIT; SELECT 1 --'"
	for i, tc := range []struct{ name, options, set, hide string }{
		{"scs at startup", "-c standard_conforming_strings=off", "", scsOff},
		{"scs by SET", "", "SET standard_conforming_strings = off", scsOff},
		{"SJIS at startup", "-c client_encoding=SJIS", "", sjis},
		{"SJIS by SET", "", "SET client_encoding = 'SJIS'", sjis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := pgx.ParseConfig(s.dsn(pgtest.Superuser))
			if err != nil {
				t.Fatal(err)
			}
			if tc.options != "" {
				cfg.RuntimeParams["options"] = tc.options
			}
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if tc.options != "" && pgCode(err) == "0A000" {
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer conn.Close(ctx)
			pc := conn.PgConn()
			q := "SET default_transaction_read_only = off"
			if tc.set != "" {
				q += "; " + tc.set
			}
			_, setErr := pc.Exec(ctx, q).ReadAll()
			q = fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 1); %s", i, tc.hide)
			_, err = pc.Exec(ctx, q).ReadAll()
			if n := rowCount(t, c, "true"); n != 0 || err == nil {
				t.Fatalf("read-only mode: %d row(s) committed by %q (%v) after %q (%v)", n, q, err, tc.set+tc.options, setErr)
			}
		})
	}
}

// TestSearchPathShadowing: a client that puts its own schema before pg_catalog (startup options
// or SET) cannot shadow what the shim's commit checks call. It did: a write committed in
// read-only mode, and in dual mode without the peer.
func TestSearchPathShadowing(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeReadOnly, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.dsn(pgtest.Superuser))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["options"] = "-c search_path=public,pg_catalog"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, shadow := range []struct{ name, create, drop string }{
		{"function", `CREATE FUNCTION public.pg_current_xact_id_if_assigned() RETURNS xid8 LANGUAGE sql AS 'SELECT NULL::xid8'`,
			`DROP FUNCTION public.pg_current_xact_id_if_assigned()`},
		{"operator", `CREATE FUNCTION public.one(text, xid8) RETURNS text LANGUAGE sql AS 'SELECT ''1''';
CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = xid8, FUNCTION = public.one)`,
			`DROP OPERATOR public.|| (text, xid8); DROP FUNCTION public.one(text, xid8)`},
	} {
		c.Exec(t, shadow.create)
		s.SetMode(ModeReadOnly, 1)
		if _, err := conn.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
			t.Fatal(err)
		}
		_, err := conn.Exec(ctx, "BEGIN; INSERT INTO acct VALUES (1, 1); COMMIT")
		if n := rowCount(t, c, "true"); n != 0 || pgCode(err) != "25006" {
			t.Fatalf("%s shadowed, read-only mode: want 25006 and no row, got %v and %d row(s)", shadow.name, err, n)
		}
		if conn.PgConn().TxStatus() == 'E' {
			// Refused by PostgreSQL at the INSERT (the setting put back on), as a read-only
			// server would: the rest of the query skipped, the block left to roll back.
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
		s.SetMode(ModeDual, 1)
		before := s.Stats().CommitsDual
		if _, err := conn.Exec(ctx, "INSERT INTO acct VALUES (1, 1)"); err != nil {
			t.Fatal(err)
		}
		if calls := peer.take(); len(calls) != 2 || s.Stats().CommitsDual != before+1 {
			t.Fatalf("%s shadowed, dual mode: the write did not commit on both: peer calls %v, stats %+v", shadow.name, calls, s.Stats())
		}
		c.Exec(t, "DELETE FROM acct; "+shadow.drop)
	}
}

// sendStartup dials the shim and sends a StartupMessage of the given protocol version for user
// and the shim's database; the connection closes at the test's end.
func sendStartup(t *testing.T, s *testShim, version uint32, user string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: map[string]string{"user": user, "database": s.c.Database()}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return conn, fe
}

// TestStartupMinorVersions: a client asking for any protocol 3.x is told the shim speaks 3.0
// (NegotiateProtocolVersion), as PostgreSQL tells it; 3.1 and 3.3 were refused as invalid.
func TestStartupMinorVersions(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	for _, minor := range []uint32{1, 2, 3, 0xffff} {
		_, fe := sendStartup(t, s, 3<<16|minor, pgtest.Superuser)
		var seen []string
		negotiated := false
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("protocol 3.%d: after %v: %v", minor, seen, err)
			}
			seen = append(seen, fmt.Sprintf("%T", m))
			if npv, ok := m.(*pgproto3.NegotiateProtocolVersion); ok && npv.NewestMinorProtocol == codeProtocol3 {
				negotiated = true
			}
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("protocol 3.%d: %s: %s", minor, e.Code, e.Message)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if !negotiated {
			t.Fatalf("protocol 3.%d: no NegotiateProtocolVersion to 3.0 in %v", minor, seen)
		}
	}
}

// TestAuthMessageBound: before a client has authenticated, a message longer than PostgreSQL
// takes for an authentication token (64 KiB) ends the attempt at once; the shim waited for up
// to max_message bytes from anyone who could reach the port, in every session slot.
func TestAuthMessageBound(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{Users: map[string]string{"app": "s3cret"}, StartupTimeout: time.Minute}, ModeSolo, 0)
	conn, fe := sendStartup(t, s, pgproto3.ProtocolVersionNumber, "app")
	if m, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(*pgproto3.AuthenticationSASL); !ok {
		t.Fatalf("want AuthenticationSASL, got %T", m)
	}
	// A SASLInitialResponse header announcing 512 KiB, and then only its first bytes.
	hdr := []byte{'p', 0, 8, 0, 4}
	if _, err := conn.Write(append(hdr, "SCRAM-SHA-256\x00"...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the shim still waits for the rest of an oversized authentication message: %v", err)
	}
}

// TestSessionsFitDatabase: without MaxSessions the shim caps sessions below the local
// database's connection limit, so that the database still takes the sidecar's own connections
// (resolver, term record saves) when clients hold every session they may.
func TestSessionsFitDatabase(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t, pgtest.WithSetting("max_connections", "20"))
	s := startShim(t, c, Options{}, ModeSolo, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var open []*pgx.Conn
	defer func() {
		for _, conn := range open {
			conn.Close(context.Background())
		}
	}()
	for len(open) < 25 {
		conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser))
		if err != nil {
			if pgCode(err) != "53300" || !strings.Contains(err.Error(), "tandem: too many sessions") {
				t.Fatalf("session %d: want the shim's 53300, got %v", len(open)+1, err)
			}
			break
		}
		open = append(open, conn)
	}
	if len(open) == 0 || len(open) > 20-3-ownConnections {
		t.Fatalf("%d sessions taken with max_connections = 20", len(open))
	}
	direct, err := pgx.Connect(ctx, c.DSN(c.Database()))
	if err != nil {
		t.Fatalf("with every session taken, the database refused the sidecar's own connection: %v", err)
	}
	direct.Close(ctx)
}

// TestReplicationStartup: a replication connection (replication=database, true, on, yes, 1, in
// any case) is refused with a clear error before it reaches the local database; the values
// PostgreSQL reads as false (0, no, off, false, in any case) ask for a plain connection, which
// the shim refused unless spelt "false" or "off".
func TestReplicationStartup(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	try := func(v string) (*pgproto3.ErrorResponse, bool) {
		conn, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
			Parameters: map[string]string{"user": pgtest.Superuser, "database": s.c.Database(), "replication": v}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("replication=%s: %v", v, err)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				return m, false
			case *pgproto3.ReadyForQuery:
				return nil, true
			}
		}
	}
	for _, v := range []string{"0", "no", "off", "false", "FALSE", "Off", "n", "f"} {
		if e, ok := try(v); !ok {
			t.Errorf("replication=%s (a plain connection) refused: %s %s", v, e.Code, e.Message)
		}
	}
	for _, v := range []string{"database", "true", "on", "yes", "1", "TRUE", "y"} {
		e, ok := try(v)
		if ok {
			t.Errorf("replication=%s: a replication connection was served", v)
			continue
		}
		if e.Code != "0A000" || !strings.Contains(e.Message, "replication") {
			t.Errorf("replication=%s: refused with %s %q, want 0A000 naming replication", v, e.Code, e.Message)
		}
	}
}

// TestSessionRegisteredBeforeGreeting: by the time a client has its ReadyForQuery, the shim
// knows the session — its statistics count it, and a cancel request sent at once finds its
// key. The greeting used to go out before the session was registered (the started hook widens
// that gap to 300 ms).
func TestSessionRegisteredBeforeGreeting(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeSolo, 0)
	s.hooks.started.set(func() { time.Sleep(300 * time.Millisecond) })
	conn := s.connect(t)
	if st := s.Stats(); st.SessionsActive != 1 {
		t.Fatalf("sessions active %d once the client has its ReadyForQuery, want 1", st.SessionsActive)
	}
	s.mu.Lock()
	n := len(s.cancels)
	s.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d cancel keys known once the client has its ReadyForQuery, want 1", n)
	}
	cancelSleep(t, conn, "pg_sleep")
}

// TestListenUnixSocket: the shim listens on a Unix socket named as PostgreSQL names its own
// (.s.PGSQL.<port>), so that clients connect with host=<dir> port=<port>; queries and cancel
// requests go over it. A stale socket file (a killed process's) is replaced; one that another
// process listens on is not; the file goes when the shim stops.
func TestListenUnixSocket(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	dir := t.TempDir()
	path := filepath.Join(dir, ".s.PGSQL.6432")
	// Bound, then closed without removing the file, as after kill -9.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("no stale socket file: %v", err)
	}
	// Runs after the shim stopped (cleanups run last first).
	t.Cleanup(func() {
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file after the shim stopped: %v", err)
		}
	})
	cfg := func(tc *config.TxShim) { tc.Listen = path }
	startShimDSN(t, c, c.DSN(c.Database()), Options{}, ModeSolo, 0, cfg)
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("socket file %v (%v), want mode 0777 whatever the umask", fi.Mode(), err)
	}

	ctx := capCtx(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=6432 user=%s dbname=%s sslmode=disable", dir, pgtest.Superuser, c.Database()))
	if err != nil {
		t.Fatalf("connect over the shim's socket: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()").Scan(&n); err != nil || n != 1 {
		t.Fatalf("query over the shim's socket: %d, %v", n, err)
	}
	cancelSleep(t, conn, "pg_sleep over the shim's socket")

	other, err := New(config.TxShim{Listen: path, LocalDSN: c.DSN(c.Database()), MaxMessage: 1 << 20, CommitTimeout: time.Second},
		Options{Site: "site1", Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err == nil || !strings.Contains(err.Error(), "another process listens") {
		other.Close()
		t.Fatalf("a second shim on a live socket: %v, want refused", err)
	}
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("the first shim after the second was refused: %v", err)
	}
}

// TestClientMarkNotOverridden: a client cannot unmark its database session (tandem.client, which
// the DDL guard reads) by sending the setting under another case in its startup packet:
// PostgreSQL takes setting names in any case, and the two keys reached it in the map's random
// order.
func TestClientMarkNotOverridden(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	s := startShim(t, c, Options{}, ModeReadOnly, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		conn, err := pgx.Connect(ctx, s.dsn(pgtest.Superuser)+"&TANDEM.CLIENT=off&Tandem.Client=off")
		if err != nil {
			t.Fatal(err)
		}
		var v string
		err = conn.QueryRow(ctx, "SELECT current_setting('tandem.client')").Scan(&v)
		conn.Close(ctx)
		if err != nil || v != "on" {
			t.Fatalf("connection %d: tandem.client = %q (%v), want on", i, v, err)
		}
	}
}
