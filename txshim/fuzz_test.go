package txshim

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/lib/pq" // the "postgres" driver for the control connection

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
)

// FuzzRelay sends arbitrary client bytes over real loopback TCP to a Shim in front of a real
// PostgreSQL cluster, and checks after every input that the shim is still whole: no session
// panicked, no session leaked, no transaction of the dual commit is left prepared, no client
// got a PREPARE TRANSACTION past the shim, and a fresh session still runs SELECT 1.
//
// The first byte of an input chooses how the rest is sent (see relayInput): raw from the first
// byte of the connection (startup parsing), or after a valid startup as raw frontend bytes or as
// records whose length headers the harness writes (so mutations reach the SQL and the commit
// interception rather than dying at framing). It also chooses the shim's mode for the input and
// whether the client half-closes its side after sending.
//
// Under `go test -fuzz` the coordinating process starts the one cluster and passes its DSN to
// the worker processes in the environment; each worker runs its own Shim. A worker killed by
// the fuzzing engine so leaves no PostgreSQL behind.
func FuzzRelay(f *testing.F) {
	for _, seed := range relaySeeds() {
		f.Add(seed)
	}
	h := newRelayHarness(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		h.check(t, data)
	})
}

// relayDSNEnv passes the coordinator's cluster to the fuzz workers.
const relayDSNEnv = "TANDEM_FUZZRELAY_DSN"

// Bits of an input's first byte.
const (
	relayRaw      = 0    // no startup by the harness: the bytes start the connection
	relayAfter    = 1    // valid startup, then the bytes as they are
	relayFramed8  = 2    // valid startup, then records: type, 1-byte length, body
	relayFramed16 = 3    // valid startup, then records: type, 2-byte length, body
	relayModeBits = 0x0c // >>2: the shim's mode for this input (relayModes)
	relayEndBits  = 0x30 // >>4: how the client ends the session (relayEnd…)
)

var relayModes = [4]Mode{ModeDual, ModeSolo, ModeReadOnly, ModeFenced}

const (
	relayTerm   = 1
	relayWindow = 300 * time.Millisecond // at most this long reading replies of one input
	relayBound  = 5 * time.Second        // a session must end, a fresh one answer, within it
	relayMaxMsg = 1 << 20
)

// relaySchema is what the dual commit needs (tandem.state with this term, tandem.ddl) plus a
// table the seeds write to.
const relaySchema = `CREATE SCHEMA IF NOT EXISTS tandem;
CREATE TABLE IF NOT EXISTS tandem.state (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
  term bigint NOT NULL, master text NOT NULL, peer_synced boolean NOT NULL);
INSERT INTO tandem.state VALUES (1, 1, 'fz', true) ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS tandem.ddl (id bigserial PRIMARY KEY, stmt text NOT NULL, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS fz (id int PRIMARY KEY, v text);`

// relayHarness is one process's Shim in front of the shared cluster.
type relayHarness struct {
	shim *Shim
	site string
	db   string
	ctl  *sql.DB // straight to the cluster
	peer *relayPeer
	log  *panicLog
}

func isFuzzWorker() bool {
	fl := flag.Lookup("test.fuzzworker")
	return fl != nil && fl.Value.String() == "true"
}

func isFuzzCoordinator() bool {
	fl := flag.Lookup("test.fuzz")
	return fl != nil && fl.Value.String() != "" && !isFuzzWorker()
}

func newRelayHarness(f *testing.F) *relayHarness {
	f.Helper()
	dsn := os.Getenv(relayDSNEnv)
	if dsn == "" || !isFuzzWorker() {
		// Long statements would stall an input; a fuzzed one cannot wait for locks for long.
		c := pgtest.Start(f, pgtest.WithSetting("statement_timeout", "'3s'"),
			pgtest.WithSetting("lock_timeout", "'1s'"))
		c.Exec(f, relaySchema)
		dsn = c.DSN(c.Database())
		if isFuzzCoordinator() {
			f.Setenv(relayDSNEnv, dsn)
		}
	}
	pc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		f.Fatal(err)
	}
	ctl, err := sql.Open("postgres", dsn)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ctl.Close() })

	h := &relayHarness{
		site: fmt.Sprintf("fz%d", os.Getpid()),
		db:   pc.Database,
		ctl:  ctl,
		peer: &relayPeer{open: map[string]bool{}},
		log:  &panicLog{},
	}
	cfg := config.TxShim{
		Listen:        "127.0.0.1:0",
		LocalDSN:      dsn,
		PeerDown:      config.PeerDownContinue,
		MaxMessage:    relayMaxMsg,
		CommitTimeout: 2 * time.Second,
	}
	s, err := New(cfg, Options{Logger: slog.New(h.log), Site: h.site, Peer: h.peer,
		MaxSessions: 32, StartupTimeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	s.SetMode(ModeDual, relayTerm)
	if err := s.Start(); err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	f.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			f.Errorf("Serve did not return after cancel")
		}
	})
	h.shim = s
	return h
}

// check runs one input and then the checks that hold after any input.
func (h *relayHarness) check(t *testing.T, data []byte) {
	in := parseRelayInput(data)
	h.shim.SetMode(in.mode, relayTerm)
	got := h.exchange(t, in)
	h.shim.SetMode(ModeDual, relayTerm)

	// The session ends and gives its slot back.
	deadline := time.Now().Add(relayBound)
	for {
		st := h.shim.Stats()
		if st.SessionsActive == 0 && st.SessionsInTx == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session not ended %v after its client left: %+v (replies %s)", relayBound, st, got)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if p := h.log.take(); p != "" {
		t.Fatalf("a session panicked (replies %s):\n%s", got, p)
	}
	h.checkPrepared(t)
	h.checkFresh(t)
}

// relayInput is a decoded fuzz input.
type relayInput struct {
	framing byte
	mode    Mode
	end     relayEnd
	payload []byte // what is sent after the harness's startup (or from the first byte)
}

func parseRelayInput(data []byte) relayInput {
	if len(data) == 0 {
		return relayInput{framing: relayRaw, mode: ModeDual}
	}
	c := data[0]
	in := relayInput{framing: c & 3, mode: relayModes[(c&relayModeBits)>>2], end: relayEnd(c&relayEndBits) >> 4}
	rest := data[1:]
	switch in.framing {
	case relayFramed8, relayFramed16:
		in.payload = frameRecords(rest, in.framing == relayFramed16)
	default:
		in.payload = rest
	}
	return in
}

// frameRecords turns records (type, length of 1 or 2 bytes, body) into frontend messages with
// true length headers. A short last record takes what is left.
func frameRecords(b []byte, wide bool) []byte {
	var out []byte
	for len(b) > 0 {
		typ := b[0]
		b = b[1:]
		n := 0
		switch {
		case wide && len(b) >= 2:
			n, b = int(binary.BigEndian.Uint16(b)), b[2:]
		case !wide && len(b) >= 1:
			n, b = int(b[0]), b[1:]
		default:
			b = nil
		}
		n = min(n, len(b))
		out = append(out, typ, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(out[len(out)-4:], uint32(n+4))
		out = append(out, b[:n]...)
		b = b[n:]
	}
	return out
}

// relayEnd is how the client ends a session once it has sent an input.
type relayEnd byte

const (
	// relayEndAnswered: the harness sends a query of its own behind the input and half-closes
	// once it is answered, so every reply to the input has been read.
	relayEndAnswered relayEnd = iota
	// relayEndAnsweredClose: as relayEndAnswered, but then closes the connection outright.
	relayEndAnsweredClose
	// relayEndHalfClose: half-closes right behind the input, an EOF in the middle of whatever
	// the input started, and reads until the shim closes.
	relayEndHalfClose
	// relayEndAbandon: closes the connection as soon as the input is written.
	relayEndAbandon
)

// relayMarker is in the error the harness's own query behind an input gets, even in an
// aborted transaction (a syntax error is found before that is checked): it tells that the shim
// has worked through the whole input.
const relayMarker = "fuzzrelay_end_marker"

// exchange sends one input over a fresh connection and reads the replies until the shim closes
// the connection, the input's ending (relayEnd) says to stop, or the reply window passes. It
// returns the types of the reply messages (raw framing: the reply bytes), for failure messages.
func (h *relayHarness) exchange(t *testing.T, in relayInput) string {
	conn, err := net.DialTimeout("tcp", h.shim.Addr().String(), relayBound)
	if err != nil {
		t.Fatalf("dial shim: %v", err)
	}
	tc := conn.(*net.TCPConn)
	defer tc.Close()
	if err := tc.SetDeadline(time.Now().Add(relayBound)); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(tc)
	if in.framing != relayRaw && !h.startup(t, tc, rd, in.mode) {
		return ""
	}
	sentinel := in.framing != relayRaw && (in.end == relayEndAnswered || in.end == relayEndAnsweredClose)
	payload := in.payload
	if sentinel {
		payload, _ = (&pgproto3.Query{String: "SELECT 1 " + relayMarker + " " + relayMarker}).Encode(payload)
	}

	// Written by its own goroutine: a shim that does not read must not block the replies.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		tc.Write(payload)
		if !sentinel {
			tc.CloseWrite()
		}
	}()
	defer func() {
		tc.Close() // unblocks the writer
		<-wrote
	}()
	if in.end == relayEndAbandon {
		<-wrote
		return ""
	}

	tc.SetReadDeadline(time.Now().Add(relayWindow))
	if in.framing == relayRaw {
		got, _ := io.ReadAll(io.LimitReader(rd, 4<<10))
		return fmt.Sprintf("%q", got)
	}
	var types strings.Builder
	marked := false
	for {
		typ, body, err := readBackendMessage(rd)
		if err != nil {
			var fe *frameError
			if errors.As(err, &fe) {
				t.Errorf("replies to the client are not well-framed after %q: %v", types.String(), err)
			}
			// EOF, a torn last message (the session ended mid-write) or the window's end.
			return types.String()
		}
		if types.Len() < 4<<10 {
			types.WriteByte(typ)
			if typ == 'E' {
				types.WriteString("(" + noticeCode(body) + ")")
			}
		}
		switch {
		case sentinel && typ == 'E' && strings.Contains(string(body), relayMarker):
			marked = true
		case marked && typ == 'Z':
			// Everything was answered: now end the session as a client going away would.
			if in.end == relayEndAnsweredClose {
				return types.String()
			}
			marked = false
			<-wrote
			tc.CloseWrite()
		}
	}
}

// frameError is a reply that is not a well-formed backend message.
type frameError struct{ msg string }

func (e *frameError) Error() string { return e.msg }

// startup runs a valid startup through the shim and reports whether the session is ready. Only
// a fenced shim may refuse it.
func (h *relayHarness) startup(t *testing.T, conn net.Conn, rd *bufio.Reader, mode Mode) bool {
	t.Helper()
	buf, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": pgtest.Superuser, "database": h.db, "application_name": "fuzzrelay"}}).Encode(nil)
	if _, err := conn.Write(buf); err != nil {
		t.Fatalf("send startup: %v", err)
	}
	for {
		typ, body, err := readBackendMessage(rd)
		if err != nil {
			t.Fatalf("startup through the shim (mode %v): %v", mode, err)
		}
		switch typ {
		case 'Z':
			return true
		case 'E':
			if mode == ModeFenced && noticeCode(body) == "57P03" {
				return false
			}
			t.Fatalf("startup through the shim (mode %v) refused: %s", mode, noticeCode(body))
		}
	}
}

// backendTypes are the message types a PostgreSQL server sends after authentication.
const backendTypes = "RKSZTDCENA123nstIGHWdcVv"

// readBackendMessage reads one message; a *frameError means it is not a backend message.
func readBackendMessage(rd *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(rd, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if !strings.ContainsRune(backendTypes, rune(hdr[0])) {
		return 0, nil, &frameError{fmt.Sprintf("unknown message type %q", hdr[0])}
	}
	// The shim refuses backend messages over max_message; its own are small.
	if n < 4 || n > relayMaxMsg+4<<10 {
		return 0, nil, &frameError{fmt.Sprintf("message %q with length %d", hdr[0], n)}
	}
	body := make([]byte, n-4)
	_, err := io.ReadFull(rd, body)
	return hdr[0], body, err
}

// checkPrepared fails when a transaction of this shim's dual commit is still prepared once its
// session has ended, when the peer was left with a prepared transaction neither committed nor
// rolled back, or when a client prepared a transaction itself.
func (h *relayHarness) checkPrepared(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), relayBound)
	defer cancel()
	rows, err := h.ctl.QueryContext(ctx, "SELECT gid FROM pg_prepared_xacts")
	if err != nil {
		t.Fatalf("list prepared transactions: %v", err)
	}
	var mine, foreign []string
	for rows.Next() {
		var gid string
		if err := rows.Scan(&gid); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(gid, "tandem_"+h.site+"_"):
			mine = append(mine, gid)
		case !strings.HasPrefix(gid, "tandem_fz"): // other workers' commits in flight start so
			foreign = append(foreign, gid)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(foreign) > 0 {
		// Roll them back so one finding does not make every later input fail.
		for _, gid := range foreign {
			h.ctl.ExecContext(ctx, "ROLLBACK PREPARED "+quoteLiteral(gid))
		}
		t.Errorf("a client's own PREPARE TRANSACTION got past the shim: %q", foreign)
	}
	if len(mine) > 0 {
		t.Fatalf("dual-commit transactions left prepared after their session ended: %q", mine)
	}
	if open := h.peer.outstanding(); len(open) > 0 {
		t.Fatalf("peer prepared %q but was never told to commit or roll back", open)
	}
}

// checkFresh fails when a new well-formed session cannot run SELECT 1 through the shim.
func (h *relayHarness) checkFresh(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), relayBound)
	defer cancel()
	port := h.shim.Addr().(*net.TCPAddr).Port
	dsn := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgtest.Superuser, port, h.db)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("fresh session through the shim: %v (stats %+v)", err, h.shim.Stats())
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Fatalf("SELECT 1 through the shim: %d, %v (stats %+v)", n, err, h.shim.Stats())
	}
}

// relayPeer stands in for the peer database: the relay is under test here, not the peer. It
// tracks which prepared transactions it still holds.
type relayPeer struct {
	mu   sync.Mutex
	open map[string]bool
}

func (p *relayPeer) Prepare(ctx context.Context, gid string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[gid] = true
	return nil
}

func (p *relayPeer) Commit(gid string)   { p.settle(gid) }
func (p *relayPeer) Rollback(gid string) { p.settle(gid) }

func (p *relayPeer) settle(gid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, gid)
}

func (p *relayPeer) outstanding() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for gid := range p.open {
		out = append(out, gid)
	}
	return out
}

// panicLog is the shim's log handler: it drops records but keeps those of recovered session
// panics, which would otherwise pass unnoticed (the shim survives them by design).
type panicLog struct {
	mu     sync.Mutex
	panics []string
	attrs  []slog.Attr
}

func (l *panicLog) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelError }

func (l *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panic") {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, "\n%s: %v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.panics = append(l.panics, b.String())
	return nil
}

func (l *panicLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *panicLog) WithGroup(string) slog.Handler      { return l }

func (l *panicLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.panics, "\n\n")
	l.panics = nil
	return s
}

// relaySeeds are inputs for every framing and mode, meant to reach the relay's branches.
func relaySeeds() [][]byte {
	enc := func(msgs ...pgproto3.FrontendMessage) []byte {
		var b []byte
		for _, m := range msgs {
			var err error
			if b, err = m.Encode(b); err != nil {
				panic(err)
			}
		}
		return b
	}
	q := func(s string) pgproto3.FrontendMessage { return &pgproto3.Query{String: s} }
	// framed16 re-encodes whole frontend messages as records with 2-byte lengths.
	framed := func(ctl byte, msgs ...pgproto3.FrontendMessage) []byte {
		out := []byte{ctl&^3 | relayFramed16}
		b := enc(msgs...)
		for len(b) >= 5 {
			n := int(binary.BigEndian.Uint32(b[1:])) - 4
			out = append(out, b[0], byte(n>>8), byte(n))
			out = append(out, b[5:5+n]...)
			b = b[5+n:]
		}
		return out
	}
	raw := func(ctl byte, b ...[]byte) []byte {
		out := []byte{ctl}
		for _, x := range b {
			out = append(out, x...)
		}
		return out
	}
	mode := func(m int) byte { return byte(m) << 2 }
	end := func(e relayEnd) byte { return byte(e) << 4 }
	const dual, solo, ro, fenced = 0, 1, 2, 3
	startup := func(params map[string]string, version uint32) []byte {
		b, _ := (&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: params}).Encode(nil)
		return b
	}
	user := map[string]string{"user": pgtest.Superuser, "database": "postgres"}
	// raw mode knows no database name: the shim refuses another one; "postgres" reaches that path.
	good := map[string]string{"user": pgtest.Superuser}
	ssl, _ := (&pgproto3.SSLRequest{}).Encode(nil)
	gss, _ := (&pgproto3.GSSEncRequest{}).Encode(nil)
	cancelReq, _ := (&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}).Encode(nil)
	ins := "INSERT INTO fz VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = excluded.v"
	insP := func(name string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: name, Query: "INSERT INTO fz VALUES ($1::int, 'p') ON CONFLICT (id) DO NOTHING"},
			&pgproto3.Bind{PreparedStatement: name, Parameters: [][]byte{[]byte("7")}},
			&pgproto3.Describe{ObjectType: 'P'},
			&pgproto3.Execute{},
		}
	}
	ext := func(pre []pgproto3.FrontendMessage, more ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
		return append(append([]pgproto3.FrontendMessage{}, pre...), more...)
	}
	execSQL := func(s string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: s}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}

	seeds := [][]byte{
		// Startup parsing from the first byte.
		raw(relayRaw, startup(good, pgproto3.ProtocolVersionNumber), enc(q("SELECT 1"), &pgproto3.Terminate{})),
		raw(relayRaw, ssl, gss, startup(good, pgproto3.ProtocolVersionNumber), enc(q("SELECT 1"))),
		raw(relayRaw, ssl, ssl),
		raw(relayRaw, cancelReq),
		raw(relayRaw, startup(map[string]string{"user": pgtest.Superuser, "_pq_.x": "1"}, pgproto3.ProtocolVersion32)),
		raw(relayRaw, startup(map[string]string{"user": pgtest.Superuser, "replication": "database"}, pgproto3.ProtocolVersionNumber)),
		raw(relayRaw, startup(user, pgproto3.ProtocolVersionNumber)),
		raw(relayRaw, startup(map[string]string{"database": "x"}, pgproto3.ProtocolVersionNumber)),
		raw(relayRaw, startup(good, 2<<16)),
		raw(relayRaw, []byte{0, 0, 0, 8, 0, 3, 0, 0}),             // startup without parameters
		raw(relayRaw, []byte{0, 0, 0, 9, 0, 3, 0, 0, 'u'}),        // unterminated parameter
		raw(relayRaw, []byte{0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0}), // huge length
		raw(relayRaw, []byte{0, 0, 0, 0}),
		raw(relayRaw|relayEndBits, []byte{0, 0, 0, 40, 0, 3}), // a startup that never finishes

		// Raw frontend bytes after a valid startup: framing errors.
		raw(relayAfter, enc(q("SELECT 1"), &pgproto3.Terminate{})),
		raw(relayAfter, []byte{'Q', 0, 0x20, 0, 0}),                // 2 MiB > max_message
		raw(relayAfter, []byte{'Q', 0x7f, 0xff, 0xff, 0xff}),       // largest length
		raw(relayAfter, []byte{'Q', 0xff, 0xff, 0xff, 0xff}),       // negative length
		raw(relayAfter, []byte{'Q', 0, 0, 0, 0}),                   // zero length
		raw(relayAfter, []byte{'Q', 0, 0, 0, 4}),                   // no NUL
		raw(relayAfter, []byte{'Q', 0, 0, 0, 8, 'S', 'E', 0, 'X'}), // bytes after NUL
		raw(relayAfter, []byte{'z', 0, 0, 0, 4}),
		raw(relayAfter, []byte{'p', 0, 0, 0, 5, 0}),
		raw(relayAfter|relayEndBits, []byte{'Q', 0, 0, 1, 0, 'S'}), // a message that never finishes
		raw(relayAfter, enc(&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, q("SELECT 2"))),
		raw(relayAfter, enc(&pgproto3.FunctionCall{Function: 2026, ResultFormatCode: 0}, q("SELECT 1"))), // pg_backend_pid

		// Records (lengths written by the harness) in every mode.
		framed(mode(dual), q("SELECT 1")),
		framed(mode(dual), q(""), q(";;"), q("-- only a comment")),
		framed(mode(dual), q(ins)),
		framed(mode(solo), q(ins)),
		framed(mode(ro), q(ins)),
		framed(mode(fenced), q(ins)),
		framed(mode(ro), q("BEGIN; SET default_transaction_read_only = off; SET transaction_read_only = off; "+ins+"; COMMIT")),
		framed(mode(dual), q("BEGIN; "+ins+"; COMMIT; SELECT 1")),
		framed(mode(dual), q("BEGIN; UPDATE fz SET v = 'c'; COMMIT AND CHAIN; UPDATE fz SET v = 'd'; COMMIT")),
		framed(mode(dual), q("BEGIN ISOLATION LEVEL SERIALIZABLE; "+ins+"; COMMIT AND CHAIN; SELECT 1; END")),
		framed(mode(dual), q(ins+"; SELECT 1/0; COMMIT")),
		framed(mode(dual), q(ins+"; COMMIT; "+ins)),
		framed(mode(dual), q("BEGIN; SELECT 1/0; COMMIT")),
		framed(mode(dual), q("COMMIT"), q("ROLLBACK"), q("END")),
		framed(mode(dual), q("BEGIN"), q(ins), q("COMMIT")),
		framed(mode(dual), q("BEGIN"), q(ins), q("SAVEPOINT a"), q("DELETE FROM fz"), q("ROLLBACK TO a"), q("RELEASE a"), q("COMMIT")),
		framed(mode(dual), q("PREPARE TRANSACTION 'tandem_x'")),
		framed(mode(dual), q("BEGIN; "+ins+"; PREPARE TRANSACTION 'x'"), q("COMMIT PREPARED 'x'"), q("ROLLBACK PREPARED 'x'")),
		framed(mode(dual), q("PREPARE p AS SELECT 1; EXECUTE p; DEALLOCATE p")),
		framed(mode(dual), q("BEGIN; CREATE TABLE IF NOT EXISTS fz2 (a int); ALTER TABLE fz2 ADD COLUMN IF NOT EXISTS b int; COMMIT")),
		framed(mode(solo), q("CREATE TABLE IF NOT EXISTS fz3 (a int); DROP TABLE fz3")),
		framed(mode(dual), q("VACUUM fz"), q("CREATE INDEX CONCURRENTLY IF NOT EXISTS fz_v ON fz (v)")),
		framed(mode(dual), q("BEGIN; VACUUM fz; COMMIT")),
		framed(mode(dual), q("CREATE TEMP TABLE tt (a int); INSERT INTO tt VALUES (1)"), q("BEGIN; "+ins+"; COMMIT")),
		framed(mode(dual), q("BEGIN; NOTIFY fzch, 'x'; "+ins+"; COMMIT"), q("LISTEN fzch; "+ins)),
		framed(mode(dual), q("BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT * FROM fz; "+ins+"; COMMIT; FETCH c; CLOSE c")),
		framed(mode(dual), q("SELECT pg_notify('fzch', 'y'), nextval(pg_get_serial_sequence('tandem.ddl', 'id'))")),
		framed(mode(dual), q("DO $$BEGIN INSERT INTO fz VALUES (4, 'do') ON CONFLICT DO NOTHING; END$$")),
		framed(mode(dual), q("SELECT $$ ; COMMIT ; $$, 'it''s; COMMIT', \"fz\".id FROM fz /* ; COMMIT */ LIMIT 1")),
		framed(mode(dual), q("BEGIN; "+ins)), // left open: the session ends in a transaction
		framed(mode(dual)|end(relayEndAbandon), q("BEGIN; "+ins)),
		framed(mode(dual)|end(relayEndAnsweredClose), q("BEGIN; "+ins)),
		framed(mode(dual)|end(relayEndHalfClose), q("BEGIN; "+ins)),
		framed(mode(dual)|end(relayEndAbandon), q(ins), q(ins), q(ins)),
		framed(mode(dual)|end(relayEndHalfClose), q(ins), q("BEGIN; "+ins+"; COMMIT")),
		framed(mode(dual), q("BEGIN; "+ins), &pgproto3.Terminate{}),
		framed(mode(dual), q("SET statement_timeout = '10ms'; SELECT pg_sleep(0.05)")),

		// COPY, simple and extended.
		framed(mode(dual), q("COPY fz FROM STDIN"), &pgproto3.CopyData{Data: []byte("10\tx\n11\ty\n")}, &pgproto3.CopyDone{}, q("SELECT 1")),
		framed(mode(dual), q("COPY fz FROM STDIN"), &pgproto3.CopyData{Data: []byte("12\tx\n")}, &pgproto3.CopyFail{Message: "no"}, q("SELECT 1")),
		framed(mode(dual), q("COPY fz FROM STDIN"), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.CopyDone{}),
		framed(mode(dual), q("COPY fz FROM STDIN"), q("SELECT 1")),
		framed(mode(dual), q("BEGIN; COPY fz FROM STDIN"), &pgproto3.CopyData{Data: []byte("13\tz\n")}, &pgproto3.CopyDone{}, q("COMMIT")),
		framed(mode(dual), q("COPY fz TO STDOUT"), q("COPY (SELECT 1) TO STDOUT")),
		framed(mode(dual), ext(execSQL("COPY fz FROM STDIN"), &pgproto3.Sync{}, &pgproto3.CopyData{Data: []byte("14\tq\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{}, q("SELECT 1"))...),
		framed(mode(dual), ext(execSQL("COPY fz FROM STDIN"), &pgproto3.Sync{}, &pgproto3.CopyFail{Message: "x"}, &pgproto3.Sync{})...),

		// Extended protocol.
		framed(mode(dual), ext(insP(""), &pgproto3.Sync{})...),
		framed(mode(solo), ext(insP("s1"), &pgproto3.Sync{}, &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("8")}}, &pgproto3.Execute{}, &pgproto3.Sync{})...),
		framed(mode(ro), ext(insP(""), &pgproto3.Sync{})...),
		framed(mode(fenced), ext(insP(""), &pgproto3.Sync{})...),
		framed(mode(dual), ext(execSQL("BEGIN"), ext(insP(""), ext(execSQL("COMMIT"), &pgproto3.Sync{})...)...)...),
		framed(mode(dual), ext(execSQL("BEGIN"), ext(insP(""), &pgproto3.Flush{}, &pgproto3.Sync{})...)...),
		framed(mode(dual), ext(execSQL("BEGIN"), &pgproto3.Sync{}, &pgproto3.Flush{})...),
		framed(mode(dual), ext(insP(""), &pgproto3.Flush{})...),
		framed(mode(dual), ext(insP(""), ext(execSQL("COMMIT AND CHAIN"), ext(execSQL("SELECT 1"), &pgproto3.Sync{})...)...)...),
		framed(mode(dual), ext(execSQL("SELEC 1"), ext(insP(""), &pgproto3.Sync{}, q("SELECT 1"))...)...),
		framed(mode(dual), ext(insP(""), ext(execSQL("SELECT 1/0"), &pgproto3.Sync{}, &pgproto3.Sync{})...)...),
		framed(mode(dual), &pgproto3.Bind{PreparedStatement: "nope"}, &pgproto3.Execute{Portal: "nope"}, &pgproto3.Sync{}),
		framed(mode(dual), &pgproto3.Describe{ObjectType: 'S', Name: "nope"}, &pgproto3.Close{ObjectType: 'S', Name: "nope"},
			&pgproto3.Close{ObjectType: 'P'}, &pgproto3.Sync{}),
		framed(mode(dual), ext(execSQL("PREPARE TRANSACTION 'y'"), &pgproto3.Sync{})...),
		framed(mode(dual), &pgproto3.Parse{Name: "a", Query: "SELECT $1::int"}, &pgproto3.Parse{Name: "a", Query: "SELECT 2"}, &pgproto3.Sync{}),
		framed(mode(dual), &pgproto3.Parse{Name: "w", Query: ins}, &pgproto3.Sync{}, &pgproto3.Bind{DestinationPortal: "pw", PreparedStatement: "w"},
			&pgproto3.Execute{Portal: "pw", MaxRows: 1}, &pgproto3.Execute{Portal: "pw"}, &pgproto3.Sync{}),
		framed(mode(dual), ext(insP(""), &pgproto3.Sync{}, &pgproto3.Terminate{})...),
		framed(mode(dual)|end(relayEndHalfClose), ext(execSQL("BEGIN"), insP("")...)...), // no Sync ever
		framed(mode(dual)|end(relayEndAbandon), ext(insP(""), &pgproto3.Sync{})...),
		framed(mode(dual), &pgproto3.FunctionCall{Function: 2026}),
	}
	// Framed with 1-byte lengths: short bodies only.
	seeds = append(seeds,
		[]byte{relayFramed8, 'Q', 9, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0},
		append([]byte{relayFramed8, 'Q', byte(len("COMMIT") + 1)}, "COMMIT\x00"...),
		[]byte{relayFramed8, 'S', 0, 'H', 0, 'X', 0},
	)
	return seeds
}
