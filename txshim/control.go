package txshim

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/config"
)

// OpenDB opens a database handle for control work (install, term records, recovery, checks)
// with github.com/lib/pq, whose operations end when their context does — also when the server
// stops answering.
//
// lib/pq alone does not do that: when a context ends it sends PostgreSQL a cancel request and
// goes on waiting for the answer, and without connect_timeout it waits for the start-up
// exchange without limit. A database that hangs (a frozen host, a stalled disk) would then hold
// the caller — a health check, a promotion writing the term into the peer's database — for as
// long as it hangs. Here every connection is dialed by Tandem, and each operation puts its
// context's deadline on the socket, so a silent server fails the operation at its deadline.
//
// One difference from plain lib/pq follows: a call without a context (Tx.Commit, Rows.Close)
// runs under the deadline of the connection's last operation, and fails once that operation's
// context has ended. Keep one context for a transaction and its statements.
//
// The deadline wins the race with lib/pq's cancel request, which is then not sent: the server
// would go on with a statement whose caller was told it failed — an UPDATE waiting for a row
// lock landed once the lock was released (TestOpenDBTimedOutStatementEnds), a slot's creation
// went on holding the slot. So the connections ask the server to check, every
// ctlCheckInterval while a statement runs, that the client is still there
// (client_connection_check_interval, PostgreSQL 14): the failed connection is closed, and the
// server ends what its statement was doing (a commit it has begun still completes). The
// connections are READ COMMITTED and writable whatever the database's defaults (ownSession),
// and without the timeouts of the database's defaults (noTimeouts). A DSN that sets one
// of these parameters itself — as a parameter, or in options or PGOPTIONS — keeps its own
// value.
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		// Not what lib/pq's error quotes of it: the URL (net/url's), a word, a service file's line.
		return nil, config.RedactDSNError(dsn, err)
	}
	if cfg.Runtime == nil {
		cfg.Runtime = map[string]string{}
	}
	if !setsParam(cfg, ctlCheckParam) {
		cfg.Runtime[ctlCheckParam] = ctlCheckInterval
	}
	// Writable whatever the database's default, as the apply's sessions are (dialApply): the
	// control work is Tandem's own — sequences copied to the peer (AlignSequences), term
	// records, decision rows pruned — and a database made read-only by default for its own
	// site's applications (ALTER DATABASE … SET default_transaction_read_only = on) refused
	// it: catch-up failed on every try at the sequences (TestPeerReadOnlyDefaultCatchUp). And
	// none of the timeouts a database's defaults may set for its applications (noTimeouts):
	// each operation is bounded by its context, and a short statement_timeout ended the copy
	// of the sequences (one statement for them all) on every try once there were enough of
	// them (TestPeerStatementTimeoutCatchUp). And READ COMMITTED (ownSession), as Tandem's
	// other own sessions are: under a SERIALIZABLE default a term record write that waited for
	// another's on the same row failed with 40001 once that one committed, where READ COMMITTED
	// reads the row it committed and decides by it (TestOpenDBSerializableDefaultTermWrite).
	for _, settings := range []map[string]string{ownSession, noTimeouts} {
		for name, value := range settings {
			if !setsParam(cfg, name) {
				cfg.Runtime[name] = value
			}
		}
	}
	c, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	c.Dialer(ctlDialer{})
	return sql.OpenDB(&ctlConnector{pq: c}), nil
}

// ctlCheckParam and ctlCheckInterval: how often the server checks, while a control statement
// runs, that its client has not gone (OpenDB).
const (
	ctlCheckParam    = "client_connection_check_interval"
	ctlCheckInterval = "1s"
)

// setsParam tells whether cfg (its DSN, or the PG* environment) sets the server parameter
// name: as a parameter of its own, or in options (-c name=value, -cname=value, --name=value;
// PGOPTIONS). The server reads options before the start-up packet's parameters, so one added
// beside options that set it would override the DSN's value (TestOpenDBCheckIntervalFromDSN).
// Only the setting's own name counts: options that set deadlock_timeout do not set
// lock_timeout (TestOpenDBOptionsOtherSetting). Options are split as the server splits them
// (splitOptions).
func setsParam(cfg pq.Config, name string) bool {
	for k := range cfg.Runtime {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	fields := splitOptions(cfg.Options)
	for i, f := range fields {
		var set string
		switch {
		case f == "-c" && i+1 < len(fields):
			set = fields[i+1]
		case strings.HasPrefix(f, "--"), strings.HasPrefix(f, "-c"):
			set = f[2:]
		default:
			continue
		}
		k, _, _ := strings.Cut(set, "=")
		if strings.EqualFold(strings.ReplaceAll(k, "-", "_"), name) {
			return true
		}
	}
	return false
}

// splitOptions splits options as PostgreSQL does (pg_split_opts): at runs of ASCII white
// space, except a space a backslash escapes, and a backslash stands for the character after
// it. Split at every space, with the backslashes kept, a value holding an escaped space read
// as options of its own, and an escaped name as another (TestOpenDBOptionsEscapedSpace).
func splitOptions(opts string) []string {
	var fields []string
	var f strings.Builder
	in, escaped := false, false
	for i := 0; i < len(opts); i++ {
		ch := opts[i]
		switch {
		case escaped:
			f.WriteByte(ch)
			escaped = false
		case ch == '\\':
			escaped, in = true, true
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r':
			if in {
				fields = append(fields, f.String())
				f.Reset()
				in = false
			}
		default:
			f.WriteByte(ch)
			in = true
		}
	}
	if in {
		fields = append(fields, f.String())
	}
	return fields
}

// checkParamRefused says what a server's refusal of ctlCheckParam at start-up means: one
// before PostgreSQL 14 has no such parameter (42704), and Tandem needs 15 (install says so of
// a 14); one on a platform that cannot tell a closed client connection takes only 0 (22023),
// which the DSN can set.
func checkParamRefused(err error) error {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || !strings.Contains(pqErr.Message, ctlCheckParam) {
		return err
	}
	switch pqErr.Code {
	case "42704":
		return fmt.Errorf("%w: the server is older than PostgreSQL 14, Tandem needs PostgreSQL 15 or newer", err)
	case "22023":
		return fmt.Errorf("%w: this server's platform cannot check for a closed client connection: add %s=0 to the DSN", err, ctlCheckParam)
	}
	return err
}

// startupTimeout bounds a connection's start-up when the operation that needs it has no
// deadline (database/sql also opens connections in the background, without one).
const startupTimeout = 15 * time.Second

// cancelTimeout bounds the delivery of a cancel request.
const cancelTimeout = time.Second

// ctlConnector hands out ctlConns.
type ctlConnector struct{ pq *pq.Connector }

// dialed is where ctlDialer leaves the socket it made for one Connect call.
type dialed struct {
	ctx  context.Context // the Connect call's: the start-up's cancel watch follows it
	conn net.Conn
	stop func() bool // the start-up's cancel watch
}

type dialedKey struct{}

func (c *ctlConnector) Connect(ctx context.Context) (driver.Conn, error) {
	d := dialed{ctx: ctx}
	dc, err := c.pq.Connect(context.WithValue(ctx, dialedKey{}, &d))
	if d.stop != nil {
		d.stop()
	}
	if err != nil {
		return nil, checkParamRefused(err)
	}
	if d.conn == nil { // cannot happen: lib/pq dials through ctlDialer
		return dc, nil
	}
	if err := d.conn.SetDeadline(time.Time{}); err != nil {
		dc.Close()
		return nil, err
	}
	return &ctlConn{Conn: dc, nc: d.conn}, nil
}

func (c *ctlConnector) Driver() driver.Driver { return c.pq.Driver() }

// ctlDialer dials TCP (or a Unix socket) and puts the start-up deadline on the socket.
type ctlDialer struct{}

func (ctlDialer) Dial(network, address string) (net.Conn, error) {
	return ctlDialer{}.DialContext(context.Background(), network, address)
}

func (ctlDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ctlDialer{}.DialContext(ctx, network, address)
}

// DialContext dials and bounds the start-up exchange that follows by ctx: its deadline (or
// startupTimeout) is put on the socket, and its cancellation ends the socket's reads.
func (ctlDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d, connecting := ctx.Value(dialedKey{}).(*dialed)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(startupTimeout)
	}
	if !connecting {
		// lib/pq dials here for nothing else than a cancel request, and waits for it (up to
		// 10 s) before a prepared statement's operation returns: a server that takes longer to
		// read one will not act on it.
		if limit := time.Now().Add(cancelTimeout); deadline.After(limit) {
			deadline = limit
		}
	}
	dialBy := deadline
	if bound, ok := ctx.Value(dialTimeoutKey{}).(time.Duration); ok {
		if limit := time.Now().Add(bound); dialBy.After(limit) {
			dialBy = limit
		}
	}
	dctx, cancel := context.WithDeadline(ctx, dialBy)
	defer cancel()
	var nd net.Dialer
	conn, err := nd.DialContext(dctx, network, address)
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return nil, err
	}
	// Connect clears the deadline (and this watch) once the start-up is over.
	if connecting {
		if d.stop != nil { // an earlier host or SSL mode tried in the same Connect
			d.stop()
		}
		d.conn = conn
		// On the Connect call's context, not ctx: with connect_timeout lib/pq dials under a
		// context of its own that it cancels as soon as the dial returns, which ended the
		// start-up's reads at once (TestOpenDBConnectTimeout). Its deadline is on the socket.
		d.stop = context.AfterFunc(d.ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	}
	return conn, nil
}

type dialTimeoutKey struct{}

// withDialTimeout bounds the TCP (or Unix socket) connect of the control connections opened
// under ctx by d, tighter than ctx's deadline, which goes on bounding the start-up exchange
// that follows: a host that is gone fails fast, a slow one has time for its round trips.
func withDialTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, dialTimeoutKey{}, d)
}

// ctlConn is a lib/pq connection whose operations put their context's deadline on the socket
// (none when the context has none) and end its reads and writes when the context is cancelled.
// Rows read after QueryContext returns are covered by the context of the query that made them.
type ctlConn struct {
	driver.Conn // *pq.conn
	nc          net.Conn
	mu          sync.Mutex
	gen         uint64      // operations armed so far
	stop        func() bool // stops the previous operation's cancel watch
}

func (c *ctlConn) arm(ctx context.Context) error {
	deadline, _ := ctx.Deadline() // zero: none
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	c.gen++
	if ctx.Done() != nil {
		gen := c.gen
		c.stop = context.AfterFunc(ctx, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.gen == gen { // still this operation's
				_ = c.nc.SetDeadline(time.Unix(1, 0))
			}
		})
	}
	return c.nc.SetDeadline(deadline)
}

func (c *ctlConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.arm(ctx); err != nil {
		return nil, err
	}
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *ctlConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.arm(ctx); err != nil {
		return nil, err
	}
	st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	_, e := st.(driver.StmtExecContext)
	_, q := st.(driver.StmtQueryContext)
	if !e || !q {
		return st, nil // lib/pq's COPY FROM statement: its operations keep the prepare's deadline
	}
	return &ctlStmt{Stmt: st, c: c}, nil
}

func (c *ctlConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.arm(ctx); err != nil {
		return nil, err
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *ctlConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.arm(ctx); err != nil {
		return nil, err
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *ctlConn) Ping(ctx context.Context) error {
	if err := c.arm(ctx); err != nil {
		return err
	}
	return c.Conn.(driver.Pinger).Ping(ctx)
}

// Close stops the last operation's cancel watch before it closes the connection: left
// registered, it would keep the closed connection (and its buffers) reachable from that
// operation's context for as long as the context lives — a run context, for the connections
// catch-up and its verify close after each catch-up (TestCatchUpReleasesRunContext).
func (c *ctlConn) Close() error {
	c.mu.Lock()
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	c.gen++
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *ctlConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *ctlConn) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

func (c *ctlConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// ctlStmt is a prepared statement of a ctlConn.
type ctlStmt struct {
	driver.Stmt
	c *ctlConn
}

func (s *ctlStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.c.arm(ctx); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *ctlStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if err := s.c.arm(ctx); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

// The interfaces database/sql looks for, which lib/pq's connection has too.
var (
	_ driver.ConnBeginTx        = (*ctlConn)(nil)
	_ driver.ConnPrepareContext = (*ctlConn)(nil)
	_ driver.ExecerContext      = (*ctlConn)(nil)
	_ driver.QueryerContext     = (*ctlConn)(nil)
	_ driver.Pinger             = (*ctlConn)(nil)
	_ driver.SessionResetter    = (*ctlConn)(nil)
	_ driver.Validator          = (*ctlConn)(nil)
	_ driver.NamedValueChecker  = (*ctlConn)(nil)
	_ driver.StmtExecContext    = (*ctlStmt)(nil)
	_ driver.StmtQueryContext   = (*ctlStmt)(nil)
	_ driver.Connector          = (*ctlConnector)(nil)
	_ pq.DialerContext          = ctlDialer{}
)
