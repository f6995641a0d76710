// Package proxy forwards operator TCP connections to the current master's
// server endpoint.
//
// Each [[proxy.listener]] gets one TCP listener. An accepted connection
// optionally carries a PROXY protocol header (accepted only from
// proxy.trusted_cidrs), waits up to connect_timeout for a master (and is
// dropped if its client leaves meanwhile), is dialed to the master's endpoint
// of the listener's name, optionally announces the operator's address to the
// server with a PROXY header of its own, and is then copied both ways with
// splice(2) on Linux (copyStream): no per-connection user-space buffer, and a
// kernel pipe only while bytes move. When the master moves, every connection
// to the old master is closed at once (DESIGN.md §4), even where both sites
// give the same address; on a handover, once its drain ended (Target.Draining),
// and once what its server wrote reached the operator (conn.endDrain).
// A master address that is one of the proxy's own
// listeners is never dialled.
//
// Limits: at most cfg.MaxConns connections per listener (default
// config.DefaultMaxConns), fewer when RLIMIT_NOFILE cannot hold that many
// (ConnsWithin); further accepts wait. Each connection uses two goroutines
// and two file descriptors, four more while bytes move both ways. Keepalive
// and the sweeper (stallTimeout) close a side whose peer vanished within about a
// minute, idle or not; one whose peer only stopped reading is left open. A PROXY
// header must arrive within HeaderTimeout (5 s); with accept_proxy = "optional"
// a client that sends nothing first is forwarded without a header once that
// time has passed, so server-speaks-first protocols should use "off" or
// "required".
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandem-ha/tandem/config"
)

// HeaderTimeout bounds how long an incoming PROXY header may take to arrive,
// so a silent client cannot hold a connection slot forever.
const HeaderTimeout = 5 * time.Second

// keepAlive is applied to both sides of every proxied connection: a peer
// that vanished without a FIN or RST is noticed within about a minute.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}

// stallTimeout is how long a side may leave what was sent to it without any ACK, as long
// as keepalive takes to give up: Linux sends no keepalive probe while sent data waits for
// an ACK, so without it a peer that vanished in the middle of a reply is noticed only when
// retransmission gives up (tcp_retries2: about 15 minutes), holding the server's session,
// and whatever it locked, that long. The sweeper applies it (stalled), not TCP_USER_TIMEOUT:
// Linux applies that to a closed receive window too, however promptly the peer answers the
// window probes, so it reset a live peer that only paused reading (a server waiting on a
// lock while a client uploads, a client busy elsewhere while a reply comes) a minute in.
var stallTimeout = keepAlive.Idle + time.Duration(keepAlive.Count)*keepAlive.Interval

// Options are the Server's collaborators.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
}

// Server owns the operator listeners and every connection accepted on them.
type Server struct {
	cfg           config.Proxy
	log           *slog.Logger
	headerTimeout time.Duration
	dialer        net.Dialer

	lns []*listener
	own []netip.AddrPort // the listeners' bound addresses, set by Start
	wg  sync.WaitGroup   // accept loops, connection handlers, the idle sweeper

	mu             sync.Mutex
	started        bool
	serving        bool
	closed         bool
	target         Target
	changed        chan struct{} // closed and replaced whenever target changes
	selfDialWarned string        // the last address warnSelfDial logged
	conns          map[*conn]struct{}

	pipes chan struct{} // a token per splice pipe in use (copyStream)
	stats counters
}

type listener struct {
	cfg config.Listener
	ln  *net.TCPListener
	sem chan struct{} // one token per open connection, cap MaxConns
}

// conn is one accepted operator connection. Fields after "guarded by
// Server.mu" are only touched with Server.mu held.
type conn struct {
	ln     *listener
	client *net.TCPConn
	start  time.Time

	up        atomic.Pointer[net.TCPConn] // the server side, once dialed
	stallSeen bool                        // the sweeper's last look found c stalled; only the sweeper touches it

	// The end of a drain that kept c (endDrain): ending says it began; endBy, set by SetMaster
	// under Server.mu before endDrain is called and never changed after, bounds the passing on
	// of the server's last reply (finishDrain) and c's whole life (Serve's end waits for it).
	ending atomic.Bool
	endBy  time.Time

	// sentUp counts the operator's bytes forward wrote to the server before the copy loop (its
	// PROXY header's excluded): with the copy's own, whether a request ever reached the server,
	// so that a reply may be owed at the drain's end (finishDrain). Only the goroutine that
	// handles c touches it.
	sentUp int64

	// guarded by Server.mu
	dialing    route              // being dialed, while dialCancel != nil
	dialCancel context.CancelFunc // cancels a dial to a route that stopped being the master's, and is cleared then (connect drops what the dial made)
	to         route              // where up is connected: the idle sweeper may look at it from then on
	cut        bool               // closed because the master moved
	idle       bool               // closed by the idle timeout
	stalled    bool               // closed because a peer left sent data unacknowledged (stallTimeout)
}

// New checks cfg and returns a Server that has not bound anything yet.
func New(cfg config.Proxy, opts Options) (*Server, error) {
	if cfg.ConnectTimeout < 0 || cfg.IdleTimeout < 0 || cfg.MaxConns < 0 {
		return nil, fmt.Errorf("proxy: negative connect_timeout, idle_timeout or max_conns")
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = config.DefaultConnectTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = config.DefaultMaxConns
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:           cfg,
		log:           log.With("component", "proxy"),
		headerTimeout: HeaderTimeout,
		changed:       make(chan struct{}),
		conns:         make(map[*conn]struct{}),
	}
	s.dialer = net.Dialer{KeepAliveConfig: keepAlive, Control: func(_, address string, _ syscall.RawConn) error {
		if s.ownAddress(address) {
			return errSelfDial
		}
		return nil
	}}
	for i, l := range cfg.Listeners {
		if l.Endpoint == "" || l.Listen == "" {
			return nil, fmt.Errorf("proxy: listener %d: endpoint and listen are required", i)
		}
		switch l.AcceptProxy {
		case "":
			l.AcceptProxy = config.ProxyOff
		case config.ProxyOff, config.ProxyOptional, config.ProxyRequired:
		default:
			return nil, fmt.Errorf("proxy: listener %s: accept_proxy %q is not off, optional or required", l.Listen, l.AcceptProxy)
		}
		switch l.SendProxy {
		case "":
			l.SendProxy = config.ProxyOff
		case config.ProxyOff, config.ProxyV1, config.ProxyV2:
		default:
			return nil, fmt.Errorf("proxy: listener %s: send_proxy %q is not off, v1 or v2", l.Listen, l.SendProxy)
		}
		s.lns = append(s.lns, &listener{cfg: l})
	}
	perListener := cfg.MaxConns
	limit, ok := fdLimit()
	s.pipes = make(chan struct{}, pipesWithin(limit)) // the least when the limit is not known
	if ok {
		if n := ConnsWithin(limit, len(s.lns)); n < perListener {
			perListener = n
			s.log.Warn("the open-file limit allows fewer connections than max_conns: each listener holds at most the lower count (further clients wait to be accepted); raise RLIMIT_NOFILE for more",
				"rlimit_nofile", limit, "fds_per_conn", fdsPerConn, "max_conns", cfg.MaxConns, "conns_per_listener", n, "listeners", len(s.lns))
		}
	}
	for _, l := range s.lns {
		l.sem = make(chan struct{}, perListener)
	}
	if cfg.IdleTimeout > 0 && !idleSupported {
		s.log.Warn("proxy idle_timeout is not supported on this platform; idle connections stay open")
	}
	return s, nil
}

// Start binds every listener. After it returns nil, Addrs is valid. On error
// nothing stays bound.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("proxy: Start called twice")
	}
	for i, l := range s.lns {
		ln, err := net.Listen("tcp", l.cfg.Listen)
		if err != nil {
			for _, prev := range s.lns[:i] {
				prev.ln.Close()
				prev.ln = nil
			}
			return fmt.Errorf("proxy: listen for endpoint %s: %w", l.cfg.Endpoint, err)
		}
		l.ln = ln.(*net.TCPListener)
		s.own = append(s.own, l.ln.Addr().(*net.TCPAddr).AddrPort())
	}
	s.started = true
	return nil
}

// fdsPerConn is what one proxied connection holds: its two sockets. While bytes move, each
// direction holds a splice pipe (two descriptors) too: at most pipesWithin of them at once,
// on top (copyStream).
const fdsPerConn = 2

// ConnsWithin is how many connections each of listeners listeners may hold within the
// open-file limit, keeping fdReserve (at least; a tenth of a large limit) for everything else
// the process opens — health checks, gossip, the admin API, the shim's sessions and its
// database connections — and room for pipesWithin splice pipes. Past the limit, accept and
// dial fail with EMFILE, and so does the health check's connect: the site would take its own
// server for failed, give up the role and cut every connection (seen with 10 000 idle
// connections under a limit of 20 000).
func ConnsWithin(limit uint64, listeners int) int {
	reserve := max(uint64(fdReserve), limit/10) + 2*uint64(pipesWithin(limit))
	if limit <= reserve || listeners < 1 {
		return 1
	}
	return int(max((limit-reserve)/uint64(fdsPerConn*listeners), 1))
}

// pipesWithin is how many splice pipes the copies may hold at once (a twentieth of the
// open-file limit in descriptors); a copy that finds them all taken moves its bytes through
// user space.
func pipesWithin(limit uint64) int {
	return int(max(limit/40, 16))
}

// fdReserve is the least ConnsWithin leaves for descriptors other than proxied connections'.
const fdReserve = 512

// Addrs returns the bound address of each listener, in the order of
// cfg.Listeners; nil before Start.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	addrs := make([]net.Addr, len(s.lns))
	for i, l := range s.lns {
		addrs[i] = l.ln.Addr()
	}
	return addrs
}

// Close releases the listeners Start bound, for a start-up that fails before Serve runs;
// Serve closes them itself when its context ends, and Close then does nothing.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving || !s.started {
		return
	}
	for _, l := range s.lns {
		if l.ln != nil {
			l.ln.Close()
		}
	}
}

// Serve accepts and forwards connections until ctx ends, then closes the
// listeners and every connection and returns once all its goroutines are
// gone. A connection whose drain ended already (conn.endDrain) is left to pass
// on the server's last reply, until its bound at the latest (drainEndBound): at
// SIGTERM the node that hands over is done, and Serve's context ends, only a
// moment after its drain. One that a drain still keeps (the node done without
// its end) has its drain ended so, not reset at once. It calls Start first if that has not been done. It
// may be called once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	started, serving := s.started, s.serving
	s.serving = true
	s.mu.Unlock()
	if serving {
		return errors.New("proxy: Serve called twice")
	}
	if !started {
		if err := s.Start(); err != nil {
			return err
		}
	}

	for _, l := range s.lns {
		s.wg.Add(1)
		go s.acceptLoop(ctx, l)
	}
	if idleSupported {
		s.wg.Add(1)
		go s.sweep(ctx)
	}
	<-ctx.Done()

	s.mu.Lock()
	s.closed = true
	all := make([]*conn, 0, len(s.conns))
	var ending, drained []*conn
	for c := range s.conns {
		if !c.endBy.IsZero() {
			ending = append(ending, c) // ends by itself within drainEndBound (finishDrain)
			continue
		}
		if s.target.Site == "" && c.to != (route{}) && !c.cut && !c.idle && !c.stalled && s.target.keeps(c.ln.cfg.Endpoint, c.to) {
			// Kept by a drain that has not ended: the node is done without its end (a
			// release past its bound). Ended here as SetMaster ends it, the server's reply
			// passed on.
			c.cut = true
			c.endBy = time.Now().Add(drainEndBound)
			drained = append(drained, c)
			ending = append(ending, c)
			continue
		}
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, l := range s.lns {
		l.ln.Close()
	}
	for _, c := range all {
		c.abort()
	}
	for _, c := range drained {
		c.endDrain()
	}
	for _, c := range ending {
		// The bound, however the connection's copy loop fares.
		t := time.AfterFunc(time.Until(c.endBy), c.abort)
		defer t.Stop()
	}
	s.wg.Wait()
	s.log.Info("proxy stopped", "total", s.stats.total.Load())
	return nil
}

// StopAccepting begins a stop whose site hands over (DESIGN §3 handover): the listeners
// close, so no new connection comes in, and every connection is closed at once (with a reset,
// as Serve's end closes them), but those connected to site's server — this site's own, its
// master handing over — which stay as long as the target keeps them (SetMaster: until the
// drain ends, or at once in a release that is no handover) or until Serve's context ends. A
// connection whose drain ended already (conn.endDrain; a stop just after a switchover) is
// left, as Serve's end leaves it, to pass on the server's last reply, until its bound at the
// latest (drainEndBound). A connection still waiting for a master or being dialled is closed
// too: it has no request being served. Safe from any goroutine; after Serve ended it does
// nothing.
func (s *Server) StopAccepting(site string) {
	s.mu.Lock()
	if !s.started || s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true // connect drops a dial still under way, track refuses what accept had
	var victims, ending []*conn
	kept := 0
	for c := range s.conns {
		if c.dialCancel != nil {
			c.dialCancel()
			c.dialing, c.dialCancel = route{}, nil
		}
		if !c.endBy.IsZero() {
			ending = append(ending, c) // ends by itself within drainEndBound (finishDrain)
			continue
		}
		if c.to != (route{}) && c.to.site == site && site != "" && !c.cut && !c.idle && !c.stalled {
			kept++
			continue
		}
		victims = append(victims, c)
	}
	s.mu.Unlock()
	for _, l := range s.lns {
		l.ln.Close()
	}
	for _, c := range victims {
		c.abort()
	}
	for _, c := range ending {
		// The bound, however the connection's copy loop fares; an abort of a connection
		// that ended already does nothing.
		time.AfterFunc(time.Until(c.endBy), c.abort)
	}
	s.log.Info("proxy stopped accepting: the connections to this site's server stay while its handover drains",
		"kept", kept, "finishing", len(ending), "closed", len(victims), "site", site)
}

func (s *Server) acceptLoop(ctx context.Context, l *listener) {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		nc, err := l.ln.AcceptTCP()
		if err != nil {
			<-l.sem
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry
			// rather than give up serving operators.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("proxy accept failed; retrying", "endpoint", l.cfg.Endpoint, "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		s.stats.total.Add(1)
		s.stats.active.Add(1)
		_ = nc.SetKeepAliveConfig(keepAlive)
		c := &conn{ln: l, client: nc, start: time.Now()}
		if !s.track(c) {
			nc.Close()
			s.stats.refused.Add(1)
			s.stats.active.Add(-1)
			<-l.sem
			continue
		}
		s.wg.Add(1)
		go s.handle(ctx, c)
	}
}

// track registers c so that cuts and shutdown reach it; false after
// shutdown began.
func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// closeBoth closes both sides of c; safe to call more than once and from any
// goroutine, since net.Conn.Close is.
func (c *conn) closeBoth() {
	c.client.Close()
	if up := c.upstreamConn(); up != nil {
		up.Close()
	}
}

// abort closes both sides of c with a reset (SO_LINGER 0), for a stream that
// neither peer ended: the master moved, the idle timeout, shutdown; and for a
// first write to the server that failed (its reset is passed on, as the copy
// loop would). A FIN
// would tell each side the other had finished: a server reading a request to
// EOF would take an aborted upload for a complete one, a client a truncated
// reply for the whole (as proxyCopy passes a peer's reset on for the same
// reason).
//
// Both lingers are set before either side is closed: closing one ends the copy
// loop, which closes the other at once.
func (c *conn) abort() {
	up := c.upstreamConn()
	_ = c.client.SetLinger(0)
	if up != nil {
		_ = up.SetLinger(0)
	}
	c.client.Close()
	if up != nil {
		up.Close()
	}
}

// endDrain ends c, which its master's drain kept (SetMaster), once the drain ended: no more
// of the operator's bytes reach the server (the copy of that direction stops at once), but
// what the server wrote — the reply to a request the drain let finish — is still passed on,
// and c is reset both ways only once the operator has it (copyBoth, finishDrain), by c.endBy
// (drainEndBound after the drain's end, set by SetMaster). A reset then, as abort's, not a FIN: the server must not take a request cut
// short for a whole one. Deadlines stop the copies without closing anything (proxyCopy);
// a write to the operator under way is not interrupted, only bounded.
func (c *conn) endDrain() {
	c.ending.Store(true)
	past := time.Unix(1, 0)
	_ = c.client.SetReadDeadline(past)
	_ = c.client.SetWriteDeadline(c.endBy)
	if up := c.upstreamConn(); up != nil {
		_ = up.SetWriteDeadline(past)
		_ = up.SetReadDeadline(past)
	}
}

// drainEndBound bounds how long the end of a drain (conn.endDrain) takes to pass on what the
// server wrote before it and after, and to see it acknowledged; drainEndQuiet is the pause in
// the server's bytes taken for the end of what it had to say — but only once the operator is
// past the reply (finishDrain); drainEndIdle is how long a connection that moved nothing,
// with no request of the operator's awaiting its reply, has been idle (idleAtDrainEnd).
var (
	drainEndBound = 2 * time.Second
	drainEndQuiet = 200 * time.Millisecond
	drainEndIdle  = 2 * time.Second
)

// finishDrain passes on to the operator what c's server wrote before the end of its drain
// stopped the copy loop, and what it writes after, until the server's end or c.endBy; then it
// waits, within that bound too, until the operator has acknowledged every byte sent to it, so
// that the reset that ends c (abort) throws none of them away. It returns the bytes passed on.
//
// The proxy does not know where a reply ends, and a server may pause in the middle of one (a
// query's rows computed as they go): a pause of drainEndQuiet ends the passing on early only
// where no reply is owed — the operator never sent its server a byte (asked false: it
// connected and waits, however recently), the connection was idle at the drain's end
// (idleAtDrainEnd), or the operator is past the reply: it sent more (its next request, which
// reaches no server: still queued, operatorMovedOn; taken by the copy as it stopped, movedOn
// (copyStream's dropped: read but not written, however soon before the drain's end it came);
// or arrived after the drain's end, sentSince) or reset (not a FIN: a half-close after its
// request, and it reads the reply).
// Otherwise the server's bytes are passed on until the bound: an operator that asked and is
// idle is reset up to drainEndBound after the drain's end, rather than drainEndQuiet. Where the kernel's state cannot be read (not Linux), every
// connection that asked waits for its bound, as it does for the operator's acknowledgements
// (unackedKnown).
func (c *conn) finishDrain(up *net.TCPConn, asked, movedOn bool) int64 {
	end := c.endBy
	drainEnd := end.Add(-drainEndBound)
	idle := idleAtDrainEnd(up, drainEndIdle)
	buf := make([]byte, 32<<10)
	var n int64
	for now := time.Now(); now.Before(end); now = time.Now() {
		wait := now.Add(drainEndQuiet)
		if wait.After(end) {
			wait = end
		}
		_ = up.SetReadDeadline(wait)
		k, err := up.Read(buf)
		if k > 0 {
			idle = false
			w, werr := c.client.Write(buf[:k])
			n += int64(w)
			if werr != nil {
				return n
			}
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			break // the server's end
		}
		if !asked || idle || movedOn || operatorMovedOn(c.client) || sentSince(c.client, drainEnd) {
			break // a pause, and no reply owed
		}
	}
	for time.Now().Before(end) {
		q, ok := unacked(c.client)
		if !ok && !unackedKnown {
			// Not Linux: what the operator has not acknowledged is not known, and the reset
			// would throw it away: it has until the bound.
			time.Sleep(time.Until(end))
			break
		}
		if !ok || q == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

// upstreamConn returns the server side of c, nil before it was dialed.
func (c *conn) upstreamConn() *net.TCPConn { return c.up.Load() }

// handle runs one connection from accept to close.
func (s *Server) handle(ctx context.Context, c *conn) {
	defer s.wg.Done()
	res := s.forward(ctx, c)

	c.closeBoth()
	s.mu.Lock()
	delete(s.conns, c)
	cut, idle, stalled := c.cut, c.idle, c.stalled
	s.mu.Unlock()
	// SetMaster and the idle sweeper mark a connection before they abort it; one whose copy
	// loop had ended on its own by then (both directions done, each FIN passed on) was closed
	// by its peers, not by them, and is not counted as theirs.
	if res.err == nil {
		cut, idle, stalled = false, false, false
	}
	if cut {
		s.stats.cut.Add(1)
	}
	if idle {
		s.stats.idle.Add(1)
	}
	<-c.ln.sem
	s.stats.active.Add(-1)
	s.stats.bytesUp.Add(res.up)
	s.stats.bytesDown.Add(res.down)

	switch {
	case !res.forwarded:
		s.stats.refused.Add(1)
		s.log.Debug("proxy connection refused", "endpoint", c.ln.cfg.Endpoint, "client", c.client.RemoteAddr().String(), "reason", res.err)
	default:
		reason := "closed"
		switch {
		case cut:
			reason = "master changed"
		case idle:
			reason = "idle timeout"
		case stalled:
			reason = "a side left sent data unacknowledged for " + stallTimeout.String()
		case ctx.Err() != nil:
			reason = "shutdown"
		case res.err != nil:
			reason = res.err.Error()
		}
		s.log.Debug("proxy connection done", "endpoint", c.ln.cfg.Endpoint, "client", res.operator,
			"server", res.server, "up", res.up, "down", res.down, "duration", time.Since(c.start).Round(time.Millisecond), "reason", reason)
	}
}

// result is how one connection went, for stats and the log line.
type result struct {
	forwarded bool   // a server connection was made
	operator  string // the operator's address (from a PROXY header when there was one)
	server    string
	up, down  int64
	err       error
}

// forward applies the PROXY rules, waits for and dials the master, then
// copies both ways until both directions are done.
func (s *Server) forward(ctx context.Context, c *conn) result {
	var res result
	hdr, pending, err := s.acceptHeader(c.client, c.ln.cfg.AcceptProxy)
	if err != nil {
		res.err = err
		return res
	}
	src, dst := operatorAddrs(c.client, hdr)
	res.operator = src.String()

	// A client already gone (a load balancer's health check that connected and closed) gets
	// no server connection; a client still there is not waited for (DESIGN.md §4: servers
	// may speak first).
	if err := leftAlready(c.client, len(pending) > 0); err != nil {
		res.err = err
		return res
	}
	up, addr, pending, err := s.connect(ctx, c, pending)
	if err != nil {
		if len(pending) > 0 {
			// The client's bytes were read and reach no server: a reset says so, as
			// closing a socket with unread data does, where a FIN could pass for the
			// server's whole answer.
			_ = c.client.SetLinger(0)
		}
		res.err = err
		return res
	}
	res.forwarded, res.server = true, addr

	// Failing here, the connection ends with a reset both ways (abort), as the copy loop
	// passes a server's reset on: a FIN could pass for the server's whole (empty) answer.
	first, err := outgoingHeader(c.ln.cfg.SendProxy, src, dst)
	if err != nil {
		c.abort()
		res.err = err
		return res
	}
	if len(pending) > 0 {
		first = append(first, pending...)
	}
	if len(first) > 0 {
		if _, err := up.Write(first); err != nil {
			c.abort()
			res.err = fmt.Errorf("write to server %s: %w", addr, err)
			return res
		}
		res.up = int64(len(pending))
		c.sentUp = res.up
	}
	n, down, err := s.copyBoth(c, up)
	res.up += n
	res.down, res.err = down, err
	return res
}
