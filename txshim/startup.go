package txshim

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Startup packet codes (PostgreSQL protocol, "Message Formats").
const (
	codeProtocol3   = 3 << 16
	codeCancel      = 80877102
	codeSSLRequest  = 80877103
	codeGSSENCReqst = 80877104
	maxStartupLen   = 10000 // MAX_STARTUP_PACKET_LENGTH in PostgreSQL
	maxAuthMessage  = 65535 // PG_MAX_AUTH_TOKEN_LENGTH in PostgreSQL
)

// startup is a client's startup message and the connection it came on, read by readStartup.
type startup struct {
	client  net.Conn      // as accepted, or the TLS connection over it; its deadline bounds the startup
	rd      *bufio.Reader // reads client
	version uint32
	params  map[string]string
}

// readStartup runs the first part of a client's startup, under the startup deadline: SSL/GSS
// negotiation up to the startup message, which it returns. It forwards a cancel request itself
// and returns nil, nil: that takes no session slot (serveConn), so that it gets through when
// every slot is taken.
func (s *Shim) readStartup(ctx context.Context, conn net.Conn) (*startup, error) {
	if err := conn.SetDeadline(time.Now().Add(s.opts.StartupTimeout)); err != nil {
		return nil, err
	}
	client := conn
	rd := bufio.NewReaderSize(conn, 16<<10)
	var params map[string]string
	var version uint32
	tlsDone, gssDone := false, false
	for params == nil {
		code, body, err := readStartupPacket(rd)
		if err != nil {
			return nil, fmt.Errorf("read startup packet: %w", err)
		}
		switch {
		case code == codeSSLRequest && !tlsDone:
			tlsDone = true
			if s.opts.TLS == nil {
				if _, err := client.Write([]byte{'N'}); err != nil {
					return nil, err
				}
				continue
			}
			if rd.Buffered() > 0 {
				// Bytes after SSLRequest but before the handshake would be read as if they came
				// over TLS (CVE-2021-23222 is this bug in libpq).
				return nil, errors.New("client sent data after SSLRequest before the TLS handshake")
			}
			if _, err := client.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(conn, s.opts.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			client = tc
			rd = bufio.NewReaderSize(tc, 16<<10)
		case code == codeGSSENCReqst && !gssDone:
			gssDone = true
			if _, err := client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
		case code == codeCancel:
			var cr pgproto3.CancelRequest
			if err := cr.Decode(body); err != nil {
				return nil, fmt.Errorf("cancel request: %w", err)
			}
			if err := s.forwardCancel(ctx, &cr); err != nil {
				s.log.Debug("txshim: cancel request not forwarded", "err", err)
			}
			return nil, nil
		case code>>16 == 3:
			// pgproto3 decodes 3.0 and 3.2 only; like PostgreSQL, the shim takes any 3.x and
			// answers a newer minor version with NegotiateProtocolVersion (negotiateVersion).
			binary.BigEndian.PutUint32(body, codeProtocol3)
			var sm pgproto3.StartupMessage
			if err := sm.Decode(body); err != nil {
				writeFatal(client, "08P01", "invalid startup packet: "+err.Error())
				return nil, fmt.Errorf("startup message: %w", err)
			}
			version, params = code, sm.Parameters
			if params == nil {
				params = map[string]string{}
			}
		default:
			writeFatal(client, "08P01", fmt.Sprintf("unsupported frontend protocol or request code %d", code))
			return nil, fmt.Errorf("unsupported startup code %d", code)
		}
	}
	return &startup{client: client, rd: rd, version: version, params: params}, nil
}

// startSession runs the rest of a client's startup (readStartup): client authentication and
// the backend connection to the local database. It prepares the greeting that passes the
// backend's ParameterStatus and BackendKeyData through; session.greet sends it.
func (s *Shim) startSession(ctx context.Context, su *startup) (*session, error) {
	client, rd, version, params := su.client, su.rd, su.version, su.params
	cwr := &clientWriter{conn: client, stall: s.opts.clientStall}
	cw := bufio.NewWriterSize(cwr, 16<<10)
	if err := negotiateVersion(cw, version, params); err != nil {
		return nil, err
	}
	user := params["user"]
	if user == "" {
		writeFatal(client, "28000", "no PostgreSQL user name specified in startup packet")
		return nil, errors.New("no user name")
	}
	if v, ok := params["replication"]; ok {
		// As PostgreSQL reads it (ProcessStartupPacket): "database" or a boolean. A replication
		// connection could create slots or stream the local database: it is not relayed.
		repl, valid := parseBool(v)
		switch {
		case v == "database" || repl:
			writeFatal(client, "0A000", "tandem: replication connections are not served by the shim")
			return nil, errors.New("replication connection refused")
		case !valid:
			writeFatal(client, "22023", fmt.Sprintf("invalid value for parameter \"replication\": %q", v))
			return nil, errors.New("invalid replication parameter")
		}
	}
	if ms := s.mode.peek(); ms.mode == ModeFenced {
		// Fenced by its role: another site is (or becomes) the master. Fenced as the master
		// (Fence): there is none to send the client to.
		what := "connect to the master"
		if ms.why != "" {
			what = "no new sessions"
		}
		writeFatal(client, "57P03", "tandem: "+ms.fencedMessage(what))
		return nil, errors.New("fenced: new session refused")
	}
	// Until the client has authenticated, a message is a SASL one, which PostgreSQL takes up to
	// PG_MAX_AUTH_TOKEN_LENGTH: anyone who reaches the port may send it.
	cr := &frameReader{r: rd, max: maxAuthMessage}
	if err := s.authenticate(cr, cw, user); err != nil {
		return nil, err
	}
	cr.max = s.maxMessage()

	readOnly := policyFor(*s.mode.Load()).readOnly
	backend, greeting, err := s.connectLocal(ctx, params, readOnly)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			writeFatal(cw, pgErr.Code, pgErr.Message)
		} else {
			writeFatal(cw, "08006", "tandem: local database unreachable")
		}
		s.log.Warn("txshim: connect to the local database", "err", err)
		return nil, err
	}
	sess := newSession(s, client, cr, cw, backend, greeting.status)
	cwr.ended = func() bool { return s.backendEnded(ctx, backend.conn, greeting.pid) }
	cwr.gone = sess.clientStalled
	// The greeting — AuthenticationOk, then what the local database told us — goes out once
	// serveConn has registered the session (greet).
	sess.greeting, _ = (&pgproto3.AuthenticationOk{}).Encode(nil)
	sess.greeting = append(sess.greeting, greeting.msgs...)
	sess.user, sess.cancelKey = user, greeting.cancelKey
	sess.roValue, sess.clientEnc, sess.superuser = greeting.readOnly, greeting.encoding, greeting.superuser
	sess.toldAuth = greeting.auth
	if readOnly {
		sess.readOnlySet, sess.roForced, sess.roSaved = true, true, greeting.clientRO
	}
	return sess, nil
}

func (s *Shim) maxMessage() int {
	if s.cfg.MaxMessage <= 0 || s.cfg.MaxMessage > 1<<30 {
		return 1 << 30 // PostgreSQL's own limit on a message (PQ_LARGE_MESSAGE_LIMIT)
	}
	return int(s.cfg.MaxMessage)
}

// readStartupPacket reads a length-prefixed startup packet and returns its code and whole body
// (code included, as pgproto3's Decode methods expect).
func readStartupPacket(r *bufio.Reader) (uint32, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[:]))) - 4
	if n < 4 || n > maxStartupLen {
		return 0, nil, fmt.Errorf("invalid startup packet length %d", n+4)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return binary.BigEndian.Uint32(body), body, nil
}

// negotiateVersion answers a client that asks for a newer minor protocol version than 3.0 or for
// protocol options (_pq_.*) with NegotiateProtocolVersion: the relay speaks 3.0 on both sides.
func negotiateVersion(w *bufio.Writer, version uint32, params map[string]string) error {
	var unknown []string
	for k := range params {
		if strings.HasPrefix(k, "_pq_.") {
			unknown = append(unknown, k)
			delete(params, k)
		}
	}
	if version == codeProtocol3 && len(unknown) == 0 {
		return nil
	}
	// The field is a whole version, major << 16 | minor, whatever pgproto3 calls it: PostgreSQL
	// sends PG_PROTOCOL_LATEST, and libpq 18 refuses a value below 3.0 ("server requested
	// downgrade to pre-3.0 protocol version").
	buf, err := (&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: codeProtocol3, UnrecognizedOptions: unknown}).Encode(nil)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// backendConn is the hijacked connection to the local database.
type backendConn struct {
	conn   net.Conn
	reader io.Reader // conn, preceded by anything pgconn had read ahead
}

type greeting struct {
	msgs      []byte // ParameterStatus…, BackendKeyData, ReadyForQuery as the client gets them
	status    byte
	cancelKey string // of BackendKeyData (cancelKey)
	pid       uint32 // the backend's process id
	readOnly  string // default_transaction_read_only as reported
	clientRO  string // the same before the shim set it on (connectLocal's readOnly)
	encoding  string // client_encoding as reported
	superuser bool   // is_superuser reported on
	// auth: is_superuser and session_authorization as reported (the client is told them in
	// the greeting: serverLoop's told).
	auth map[string]string
}

// connectLocal opens the backend connection with the local DSN's credentials (the client was
// authenticated by the shim itself) and the client's session parameters (application_name,
// client_encoding, options, …). The database is the DSN's: a client asking for another one is
// refused, so a misconfigured server cannot write to a database Tandem does not replicate.
// readOnly: the session starts in a read-only mode, with default_transaction_read_only = on set
// before the greeting, which then tells the client so, as a read-only PostgreSQL does: libpq
// reads it there for target_session_attrs, and would take a backup's shim for read-write.
func (s *Shim) connectLocal(ctx context.Context, params map[string]string, readOnly bool) (*backendConn, *greeting, error) {
	cfg := s.localCfg.Copy()
	// A local_dsn without a database name reaches the one named as its user, as PostgreSQL's
	// clients do: a client naming that one (libpq names the user's when given none) is served.
	if db, served := params["database"], cmp.Or(cfg.Database, cfg.User); db != "" && db != served {
		return nil, nil, &pgconn.PgError{Severity: "FATAL", Code: "3D000",
			Message: fmt.Sprintf("tandem: database %q is not served here (the shim serves %q)", db, served)}
	}
	rp := make(map[string]string, len(cfg.RuntimeParams)+len(params))
	for k, v := range cfg.RuntimeParams {
		rp[k] = v
	}
	for k, v := range params {
		switch {
		case k == "user", k == "database", k == "replication":
		case strings.EqualFold(k, "tandem.client"):
			// PostgreSQL takes setting names in any case: TANDEM.CLIENT would be a second
			// key beside the shim's below, applied before or after it as the map goes.
		default:
			rp[k] = v
		}
	}
	// Marks the session as a client's for the event trigger that refuses DDL the shim cannot
	// ship (ddlGuardSQL); the client's own value, if it sent one, does not count. Set in the
	// startup packet, it is the session's default: RESET and DISCARD ALL keep it.
	rp["tandem.client"] = "on"
	cfg.RuntimeParams = rp
	// The client's packet was within PostgreSQL's limit (readStartupPacket); with local_dsn's
	// user and database and tandem.client it may not be, and PostgreSQL closes such a
	// connection without a word, which would read as the database being unreachable.
	if n := startupBodyLen(cfg.User, cfg.Database, rp); n > maxStartupLen {
		return nil, nil, &pgconn.PgError{Severity: "FATAL", Code: "08P01", Message: fmt.Sprintf(
			"tandem: invalid startup packet: with the shim's own parameters it is %d bytes, more than PostgreSQL takes (%d)", n+4, maxStartupLen+4)}
	}
	cctx, cancel := context.WithTimeout(ctx, s.opts.StartupTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	clientRO := pc.ParameterStatus("default_transaction_read_only")
	if readOnly {
		if _, err := pc.Exec(cctx, "SET default_transaction_read_only = on").ReadAll(); err != nil {
			pc.Close(cctx)
			return nil, nil, err
		}
	}
	// pgconn may still read the socket in the background: when a write of its was slow (a
	// loaded machine), it started a reader goroutine that stops only after its next Read
	// returns — with the first reply to the client's first request, which the relay would then
	// never see (the session hung with the backend idle). SyncConn stops that reader and drains
	// what it holds, with a round trip if it must.
	if err := pc.SyncConn(cctx); err != nil {
		pc.Close(cctx)
		return nil, nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(cctx)
		return nil, nil, err
	}
	g := &greeting{status: hc.TxStatus, cancelKey: cancelKey(hc.PID, hc.SecretKey), pid: hc.PID,
		readOnly: hc.ParameterStatuses["default_transaction_read_only"], clientRO: clientRO,
		encoding: hc.ParameterStatuses["client_encoding"], superuser: hc.ParameterStatuses["is_superuser"] == "on",
		auth: map[string]string{}}
	for _, name := range []string{"is_superuser", "session_authorization"} {
		if v, ok := hc.ParameterStatuses[name]; ok {
			g.auth[name] = v
		}
	}
	for k, v := range hc.ParameterStatuses {
		if why := lexerUnsafe(k, v); why != "" {
			hc.Conn.Close()
			return nil, nil, &pgconn.PgError{Severity: "FATAL", Code: "0A000", Message: "tandem: " + why}
		}
		g.msgs, _ = (&pgproto3.ParameterStatus{Name: k, Value: v}).Encode(g.msgs)
	}
	g.msgs, _ = (&pgproto3.BackendKeyData{ProcessID: hc.PID, SecretKey: hc.SecretKey}).Encode(g.msgs)
	g.msgs, _ = (&pgproto3.ReadyForQuery{TxStatus: hc.TxStatus}).Encode(g.msgs)
	b := &backendConn{conn: hc.Conn, reader: hc.Conn}
	if hc.Frontend.ReadBufferLen() > 0 {
		// pgconn read past ReadyForQuery (an early notice, say): re-encode what it holds so the
		// relay reads it first.
		var pre []byte
		for hc.Frontend.ReadBufferLen() > 0 {
			msg, err := hc.Frontend.Receive()
			if err != nil {
				hc.Conn.Close()
				return nil, nil, fmt.Errorf("drain backend read-ahead: %w", err)
			}
			if pre, err = msg.Encode(pre); err != nil {
				hc.Conn.Close()
				return nil, nil, err
			}
		}
		b.reader = io.MultiReader(bytes.NewReader(pre), hc.Conn)
	}
	return b, g, nil
}

// startupBodyLen is the length, without its length word, of the startup packet pgconn sends
// for user, database and params: the version, each name and value NUL-terminated, a final NUL.
func startupBodyLen(user, database string, params map[string]string) int {
	n := 4 + len("user") + len(user) + 2 + 1
	if database != "" {
		n += len("database") + len(database) + 2
	}
	for k, v := range params {
		n += len(k) + len(v) + 2
	}
	return n
}

// lexerUnsafe says why a setting the database reports (ParameterStatus) leaves the lexer unable
// to tell where statements end, or returns "". With standard_conforming_strings off a backslash
// escapes a quote in '…'; in the client-only encodings the second byte of a character may be a
// backslash, and the lexer reads the client's bytes. Either hides a COMMIT from the lexer, and
// that commit would bypass the dual commit and the read-only and fenced modes (DESIGN §5.1).
func lexerUnsafe(name, value string) string {
	switch name {
	case "standard_conforming_strings":
		if value != "on" {
			return "standard_conforming_strings = " + value + " is not supported"
		}
	case "client_encoding":
		switch value {
		case "SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "UHC", "GB18030", "JOHAB":
			return "client_encoding " + value + " is not supported: use an encoding PostgreSQL accepts as a server encoding, such as UTF8"
		}
	}
	return ""
}

// cancelKey is how a cancel request names a session: its backend's process id and secret key.
func cancelKey(pid uint32, secret []byte) string {
	return strconv.FormatUint(uint64(pid), 10) + ":" + string(secret)
}

// forwardCancel sends the client's cancel request unchanged to the local database: the client
// holds the backend's real process id and secret key, which the shim passed through. It goes to
// the address the session with that key is connected to — local_dsn may list several hosts —
// and nowhere when no session of the shim has that key.
func (s *Shim) forwardCancel(ctx context.Context, cr *pgproto3.CancelRequest) error {
	s.mu.Lock()
	to := s.cancels[cancelKey(cr.ProcessID, cr.SecretKey)]
	s.mu.Unlock()
	if to == nil {
		return errors.New("no session has that key")
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, to.Network(), to.String())
	if err != nil {
		return fmt.Errorf("dial local database for cancel: %w", err)
	}
	defer c.Close()
	buf, err := cr.Encode(nil)
	if err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(buf); err != nil {
		return fmt.Errorf("send cancel: %w", err)
	}
	// PostgreSQL closes the connection once it has handled the request.
	_, _ = c.Read(make([]byte, 1))
	return nil
}

// writeFatal sends a FATAL ErrorResponse to a client that is about to be disconnected.
func writeFatal(w io.Writer, code, msg string) {
	buf, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: msg}).Encode(nil)
	if bw, ok := w.(*bufio.Writer); ok {
		bw.Write(buf)
		bw.Flush()
		return
	}
	w.Write(buf)
}

// parseBool reads a boolean as PostgreSQL's parse_bool does: true, yes, on, 1, false, no, off, 0,
// in any case, or a prefix of one that tells which (at least "on" or "of" for on and off).
func parseBool(v string) (value, ok bool) {
	l := strings.ToLower(v)
	prefix := func(word string, min int) bool { return len(l) >= min && strings.HasPrefix(word, l) }
	switch {
	case prefix("true", 1), prefix("yes", 1), prefix("on", 2), l == "1":
		return true, true
	case prefix("false", 1), prefix("no", 1), prefix("off", 2), l == "0":
		return false, true
	}
	return false, false
}
