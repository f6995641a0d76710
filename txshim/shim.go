package txshim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tandem-ha/tandem/config"
)

// Options are the parts of a Shim that do not come from the site's TOML.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// clientStall, for the tests: clientWriter's time scale (clientStall); 0: clientStall.
	clientStall time.Duration
	Site        string // this site's name, part of every global transaction id
	Peer        Peer   // the peer side of the dual commit; nil: dual mode acts as solo
	// Users holds the client users and their passwords for SCRAM-SHA-256 client authentication;
	// nil trusts every client (the listener should then be loopback only).
	Users map[string]string
	TLS   *tls.Config // offered to clients that ask for SSL; nil: SSL refused
	// OnPeerDown is called, synchronously and before the first solo commit, when a peer prepare
	// had an unknown outcome in dual mode. It should return once peer_synced = false is
	// announced (DESIGN §3 "going solo is announced first"): true, and the shim switches itself
	// to solo; false when this site may not commit alone now (the announcement was not
	// acknowledged), and the commit is left in doubt for the resolver (SQLSTATE 08007) while
	// the shim stays dual — a later commit asks again. Concurrent sessions wait for one call
	// rather than making several. nil: the shim goes solo at once. With peer_down = "block" it
	// is called, its answer ignored, after a plain commit the peer did not take (committed on
	// this site's database only): the peer lacks it — unless OnPeerLacks is set.
	OnPeerDown func() bool
	// OnPeerLacks is called, synchronously, after a commit made on this site's database that
	// the peer did not take where the shim does not go solo (peer_down = "block", a handover
	// under way, the peer database's refusal of the term): it should record peer_synced =
	// false and return without waiting for an acknowledgement — nothing commits alone after
	// it, so there is no going solo to announce. nil: OnPeerDown is called, its answer
	// ignored.
	OnPeerLacks func()
	// OnInDoubt is called when a commit is left prepared for the resolver (its peer outcome
	// unknown, and committing alone not allowed): a pass may settle it at once, and its row
	// locks with it. It must not block. nil: nothing is called.
	OnInDoubt func()
	// MaxSessions bounds concurrent client sessions; 0 means 256, or fewer when the local
	// database allows fewer connections beside the sidecar's own (fitSessions). A client beyond
	// it gets SQLSTATE 53300 (too_many_connections). Cancel requests take no session.
	MaxSessions int
	// StartupTimeout bounds a client's startup and authentication; 0 means 30s.
	StartupTimeout time.Duration
	// FuncRefresh is how old the shim's lists of what makes a read write or a transaction
	// notify (funcs.go) may grow before a statement that needs them has them read again; 0
	// means 10s.
	FuncRefresh time.Duration
}

// Stats are counters since the Shim was made.
type Stats struct {
	SessionsActive int64
	SessionsTotal  int64
	// SessionsInTx counts sessions whose database connection is inside a transaction: a
	// handover waits for it to reach 0 (DESIGN §3).
	SessionsInTx int64
	CommitsDual  int64 // committed on both databases (DESIGN §5.3)
	CommitsSolo  int64 // write transactions committed locally only (solo mode)
	CommitsPlain int64 // transactions without an xid: plain COMMIT, never the peer
	// Unwrapped counts write transactions committed plainly in dual mode because they could not
	// be prepared (temporary objects, LISTEN/NOTIFY, WITH HOLD cursors, a role set with SET ROLE
	// that local_dsn's user, not a superuser, could not finish prepared) or wrote where the lexer
	// saw a read; the decoder ships them from the stream right after, and their reply waits
	// for it (awaitShipped).
	Unwrapped  int64
	PeerErrors int64 // dual commits whose peer prepare failed (definite or unknown)
	Refused    int64 // write commits refused by mode or term (read-only, fenced, stale term)
	// LeftInDoubt counts commits left prepared for the resolver, their client told 08007 (the
	// peer's outcome unknown, and committing alone not allowed).
	LeftInDoubt int64
}

type counters struct {
	active, total, inTx                    atomic.Int64
	dual, solo, plain, unwrapped, peerErrs atomic.Int64
	refused, leftInDoubt                   atomic.Int64
}

// Shim is the PostgreSQL-wire shim of one site: it accepts the server's database connections and
// relays each to the local database, running the dual commit at the end of write transactions.
type Shim struct {
	cfg      config.TxShim
	opts     Options
	log      *slog.Logger
	localCfg *pgconn.Config // parsed once; copied per session
	// ownCfg is localCfg for the shim's own connections to the local database (markApart,
	// fitSessions, backendEnded, connectAt, the catalog reads), not the clients' it relays:
	// those keep the database's defaults, these take ownSession and noTimeouts in their place.
	ownCfg *pgconn.Config
	hooks  shimHooks // set only by tests

	mode  modeCell // sessions read it with Load, the shim itself with peek
	stats counters

	peerDownMu sync.Mutex // serializes OnPeerDown calls
	// stallCheck: one backendEnded question to the local database at a time (each takes a
	// connection beside the ones ownConnections keeps); a stalled session that finds it taken
	// asks again at its next recheck.
	stallCheck sync.Mutex
	// peerDownGen counts OnPeerDown calls that refused (under peerDownMu; read before taking
	// it): sessions that waited for a refusing call share its answer instead of asking again.
	peerDownGen atomic.Uint64

	funcs    *writerFuncs // the functions that may write (funcs.go)
	inflight sync.Map     // gid → struct{}: dual commits from before the local PREPARE until done
	gate     commitGate
	// prepared: the dual commits holding a prepared transaction on the local database (prepSlots)
	prepared prepSlots

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session]struct{}
	cancels  map[string]net.Addr // cancelKey → the session's local database address
	slots    limiter             // client sessions (MaxSessions)
	starting limiter             // connections in startup (maxStartups)
	fit      bool                // MaxSessions was not given: Serve fits it to the database (fitSessions)
	// fitPending: the cap is still to be fitted (fitIfPending); fitMu serialises the fitting,
	// and guards fitTried (when the last asking began) and fitWarned (fitSessions said the database
	// did not answer: said once).
	fitPending atomic.Bool
	fitMu      sync.Mutex
	fitTried   time.Time
	fitWarned  bool
}

// New checks cfg and returns a Shim in read-only mode; Start binds it and Serve runs it.
func New(cfg config.TxShim, opts Options) (*Shim, error) {
	if cfg.Listen == "" {
		return nil, errors.New("txshim: no listen address")
	}
	lc, err := parseDSN(cfg.LocalDSN)
	if err != nil {
		return nil, fmt.Errorf("txshim: local_dsn: %w", err)
	}
	// The relay speaks protocol 3.0 to both sides; see negotiateVersion.
	lc.MinProtocolVersion, lc.MaxProtocolVersion = "3.0", "3.0"
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fit := opts.MaxSessions <= 0
	if fit {
		opts.MaxSessions = 256
	}
	if opts.StartupTimeout <= 0 {
		opts.StartupTimeout = 30 * time.Second
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 10 * time.Second
	}
	if cfg.PeerDown == "" {
		cfg.PeerDown = config.PeerDownContinue
	}
	own := lc.Copy()
	pinSettings(own, noTimeouts, ownSession)
	s := &Shim{
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger.With("part", "txshim"),
		localCfg: lc,
		ownCfg:   own,
		sessions: make(map[*session]struct{}),
		cancels:  make(map[string]net.Addr),
		slots:    limiter{max: opts.MaxSessions},
		starting: limiter{max: maxStartups(opts.MaxSessions)},
		fit:      fit,
	}
	s.funcs = newWriterFuncs(own, opts.FuncRefresh, s.log)
	s.mode.set(&modeState{mode: ModeReadOnly})
	return s, nil
}

// Start binds the listen address. Serve calls it when it was not called before.
func (s *Shim) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	var ln net.Listener
	var err error
	if strings.HasPrefix(s.cfg.Listen, "/") {
		ln, err = listenUnix(s.cfg.Listen)
		if err == nil {
			// Anyone on the host may connect, as to a loopback address (and to PostgreSQL's
			// own socket, unix_socket_permissions 0777): users_file authenticates clients,
			// the directory's permissions can keep others out. The umask would shut out a
			// server running as another user.
			if cerr := os.Chmod(s.cfg.Listen, 0o777); cerr != nil {
				ln.Close()
				return fmt.Errorf("txshim: listen: %w", cerr)
			}
		}
	} else {
		ln, err = net.Listen("tcp", s.cfg.Listen)
	}
	if err != nil {
		return fmt.Errorf("txshim: listen: %w", err)
	}
	s.ln = ln
	return nil
}

// listenUnix binds a Unix socket at path (removed again when the listener closes). A socket
// file left there by a process that is gone (killed, so it did not remove it) is replaced; one
// another process still listens on is not.
func listenUnix(path string) (net.Listener, error) {
	ln, err := net.Listen("unix", path)
	if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	if fi, serr := os.Lstat(path); serr != nil {
		return nil, fmt.Errorf("%w (%v)", err, serr)
	} else if fi.Mode().Type() != fs.ModeSocket {
		return nil, fmt.Errorf("%w (a file that is not a socket: not removed)", err)
	}
	c, derr := net.DialTimeout("unix", path, time.Second)
	if derr == nil {
		c.Close()
		return nil, fmt.Errorf("%w: another process listens on it", err)
	}
	if !errors.Is(derr, syscall.ECONNREFUSED) {
		return nil, fmt.Errorf("%w (and whether it is stale is unknown: %v)", err, derr)
	}
	if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: remove the stale socket: %v", err, rerr)
	}
	return net.Listen("unix", path)
}

// Close releases the listen address Start bound, for a start-up that fails before Serve runs
// (Serve closes it itself when its context ends). Serve must not be called after it.
func (s *Shim) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
}

// Addr is the bound address, nil before Start.
func (s *Shim) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// SetMode sets the mode and the term this site is master (or backup) of. A commit in progress
// keeps the mode it started with; every later step of every session sees the new one.
func (s *Shim) SetMode(m Mode, term uint64) {
	if m == ModeDual { // the peer has everything again
		s.mode.solo.Delete(term)
	}
	old := s.mode.set(&modeState{mode: m, term: term})
	if old.mode != m || old.term != term {
		s.log.Info("txshim mode", "mode", m.String(), "term", term, "was", old.mode.String())
	}
}

// SwitchMode sets the mode to m only while it is from in term, atomically with that check (a
// role change in between wins); it reports whether it did.
func (s *Shim) SwitchMode(from, m Mode, term uint64) bool {
	old := s.mode.peek()
	if old.mode != from || old.term != term {
		return false
	}
	if !s.mode.swap(old, &modeState{mode: m, term: term}) {
		return false
	}
	if m == ModeDual { // caught up: the peer has everything again
		s.mode.solo.Delete(term)
	}
	s.log.Info("txshim mode", "mode", m.String(), "term", term, "was", from.String())
	return true
}

// Fence fences the shim in term (ModeFenced) only while it is from in term, as SwitchMode does,
// and tells the clients it then refuses why (a master whose term the peer database gives
// another master, say, which is no site to send them to another master); it reports whether
// it did.
func (s *Shim) Fence(from Mode, term uint64, why string) bool {
	old := s.mode.peek()
	if old.mode != from || old.term != term {
		return false
	}
	if !s.mode.swap(old, &modeState{mode: ModeFenced, term: term, why: why}) {
		return false
	}
	s.log.Info("txshim mode", "mode", ModeFenced.String(), "term", term, "was", from.String(), "why", why)
	return true
}

// WentSolo reports whether the shim may have committed alone in term since it was last dual
// in term, that is, since the peer last had everything: a session read the mode while it was
// solo in term (modeCell.Load: any statement may write, and a write commit under way reads the
// mode again before it commits), or a dual commit went on alone after its peer failed
// (peerDown). It errs toward yes — a session that only read, in solo mode, counts — but no is
// certain: being set to solo mode is not enough. A master that announced going solo and then
// lost the role before any session saw it solo (a promotion that failed after it set solo
// mode, say) committed nothing alone that the peer lacks.
func (s *Shim) WentSolo(term uint64) bool {
	_, ok := s.mode.solo.Load(term)
	return ok
}

// PeerHasAll is told that peer_synced = true is published for term (the peer has every commit
// so far): while the shim is dual in term, term no longer counts as one it committed alone in
// (WentSolo). A plain commit the peer did not take in dual mode (peerLacks, with peer_down =
// "block") noted it, and nothing cleared it — only a switch to dual does (SetMode,
// SwitchMode), and the shim never left dual mode — so that once the peer had it all again, a handover's Barrier and
// DrainRanOut took the term for one whose peer_synced = false was recorded already, skipped,
// and "released" said the peer had everything (TestHandoverDrainRunsOutAfterCatchUp).
func (s *Shim) PeerHasAll(term uint64) {
	s.mode.mu.Lock()
	defer s.mode.mu.Unlock()
	if cur := s.mode.p.Load(); cur.mode == ModeDual && cur.term == term {
		s.mode.solo.Delete(term)
	}
}

// HoldCommits stops write transactions from starting their commit and waits until those
// already committing are done, so that the stream the Shipper reads has an end for the moment
// (DESIGN §5.5: catch-up ships the tail with new commits held). release lets them go on; only
// one hold is granted at a time. A commit the lexer took for read-only is not held unless its
// transaction wrote after all (a function it did not know writes); the hold waits for those
// under way when it is asked for all the same, since they may have.
func (s *Shim) HoldCommits(ctx context.Context) (release func(), err error) {
	return s.gate.hold(ctx)
}

// Drain waits until no write commit is in flight (DESIGN §3 handover: the master waits for
// in-flight transactions, bounded, then they are rolled back, before it releases the role).
// Set a mode without writes first: a commit that comes through the gate after that is refused.
//
// What is still counted in the commit gate when the wait runs out — a procedure that runs on
// (it commits by itself, outside the commit procedure), a commit that hangs — would go on after
// the release and could commit on this database, the site backup by then and its shipper no
// longer shipping: Drain ends it (endInFlight), the backends of those sessions terminated so
// that what they had not committed is rolled back, and the sessions with them. The wait ends
// DrainEnd before ctx's deadline, for that; a ctx without one, ended, leaves DrainEnd past its
// end. The error says that the wait ran out even when ending the rest succeeded: what ran
// meanwhile may have committed (a procedure's earlier transactions), unshipped for all the
// caller knows; the error then wraps ErrDrainEnded, and the caller's Barrier finds whether the
// peer has it: nothing ended commits any more, and what it committed before is a plain commit
// in the stream, before the barrier's mark — a report query that outlasts the bound must not
// make a release record peer_synced = false (TestHandoverDrainEndsRead).
func (s *Shim) Drain(ctx context.Context) error {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		wctx, cancel = context.WithDeadline(ctx, dl.Add(-DrainEnd))
	}
	err := s.gate.idle(wctx)
	if err == nil {
		err = s.unwrappedIdle(wctx)
	}
	cancel()
	if err == nil {
		return nil
	}
	ectx := ctx
	if ctx.Err() != nil {
		var ecancel context.CancelFunc
		ectx, ecancel = context.WithTimeout(context.WithoutCancel(ctx), DrainEnd)
		defer ecancel()
	}
	if eerr := s.endInFlight(ectx); eerr != nil {
		s.log.Error("txshim: handover drain: cannot end what is still in flight; it may commit on this database after the release", "err", eerr)
		return fmt.Errorf("%w; not ended: %v", err, eerr)
	}
	return fmt.Errorf("%w; %w", err, ErrDrainEnded)
}

// ErrDrainEnded is in Drain's error when its wait ran out and it ended what was still in
// flight: nothing of that commits after Drain returns (what it had committed before stays).
var ErrDrainEnded = errors.New("ended what was still in flight (rolled back)")

// unwrappedInFlight returns the sessions with something sent while the mode took writes still
// unanswered (session.mayWriteInFlight): a statement the lexer took for a read runs unwrapped,
// in PostgreSQL's own implicit transaction, counted nowhere in the commit gate, and one that
// writes all the same (a function the shim does not know writes) commits by itself.
func (s *Shim) unwrappedInFlight() []*session {
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	var ss []*session
	for _, sess := range all {
		if sess.mayWriteInFlight() {
			ss = append(ss, sess)
		}
	}
	return ss
}

// unwrappedIdle waits until unwrappedInFlight is empty, and no backend of a session that
// ended in flight (orphaned) is left, or ctx ends.
func (s *Shim) unwrappedIdle(ctx context.Context) error {
	for {
		ss, orphans := s.unwrappedInFlight(), s.gate.orphanCount()
		if len(ss)+orphans == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d statements that may write still in flight: %w", len(ss)+orphans, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// DrainEnd is what Drain keeps of its bound to end what is still in flight (endInFlight).
const DrainEnd = 2 * time.Second

// endInFlight ends the sessions counted in the commit gate, or with something sent while the
// mode took writes unanswered (a drain ran out): their backends, and those of sessions that
// ended in flight (orphaned), are terminated, and it waits until they are gone — a backend
// ends its transaction, rolled back unless it committed already, before it leaves
// pg_stat_activity — and the gate is idle, within ctx. A transaction a terminated backend had
// prepared stays prepared, for the resolver. The sessions end with a FATAL error (57P01) that
// says why (session.ending).
func (s *Shim) endInFlight(ctx context.Context) error {
	ss, orphans := s.gate.inFlight()
	for _, sess := range s.unwrappedInFlight() {
		if !slices.Contains(ss, sess) {
			ss = append(ss, sess)
		}
	}
	if len(ss)+len(orphans) == 0 {
		return s.gate.idle(ctx)
	}
	_, term := s.Mode()
	why := fmt.Sprintf("tandem: this site gave up the master role of term %d with this session's commit, procedure or statement still in flight past the handover's bound: the session is ended, what it had not committed rolled back (a transaction it had prepared already is settled by the resolver)", term)
	// The backends by the address of their server: with several hosts in local_dsn, a
	// session's may be on any (TestDrainEndsOtherHost).
	byAddr := map[backendAddr][]string{}
	for _, o := range orphans {
		byAddr[o.at] = append(byAddr[o.at], o.pid)
	}
	for _, sess := range ss {
		sess.ending.Store(&why)
		if pid, _, ok := strings.Cut(sess.cancelKey, ":"); ok {
			at := addrOf(sess.backend.RemoteAddr())
			byAddr[at] = append(byAddr[at], pid)
		}
	}
	s.log.Warn("txshim: handover drain ran out: terminating the backends still in flight", "sessions", len(ss), "orphans", len(orphans))
	// On every server at once: one that fails, or does not answer within ctx, must not leave
	// the backends on the others running (TestDrainEndsPastFailedHost).
	errs := make([]error, 0, len(byAddr))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for at, pids := range byAddr {
		wg.Go(func() {
			if err := s.terminate(ctx, at, pids); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Those sessions leave the gate as their backends' ends reach them; others may have come
	// through before the terminate (a commit refused, since the mode takes no writes).
	return s.gate.idle(ctx)
}

// terminate terminates the backends pids on the server at, and waits until they are gone
// from its pg_stat_activity, within ctx.
func (s *Shim) terminate(ctx context.Context, at backendAddr, pids []string) error {
	arr := []byte("{" + strings.Join(pids, ",") + "}")
	s.log.Warn("txshim: terminating backends", "server", at.addr, "pids", string(arr))
	conn, err := s.connectAt(ctx, at)
	if err != nil {
		return fmt.Errorf("cannot terminate the backends %s: %w", arr, err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(cctx)
		ccancel()
	}()
	if rr := conn.ExecParams(ctx, "SELECT pg_catalog.pg_terminate_backend(p) FROM pg_catalog.unnest($1::pg_catalog.int4[]) p", [][]byte{arr}, nil, nil, nil).Read(); rr.Err != nil {
		return fmt.Errorf("cannot terminate the backends %s: %w", arr, rr.Err)
	}
	for {
		rr := conn.ExecParams(ctx, "SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE pid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int4[])", [][]byte{arr}, nil, nil, nil).Read()
		if rr.Err != nil {
			return fmt.Errorf("backends %s terminated, not known gone: %w", arr, rr.Err)
		}
		if len(rr.Rows) == 1 && len(rr.Rows[0]) == 1 && string(rr.Rows[0][0]) == "0" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("backends %s terminated, not gone yet: %w", arr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// backendAddr is the address of the server a session's backend is on (its connection's remote
// address); zero when not known.
type backendAddr struct{ network, addr string }

func addrOf(a net.Addr) backendAddr {
	if a == nil {
		return backendAddr{}
	}
	return backendAddr{a.Network(), a.String()}
}

// connectAt connects to the local database on the server at, through local_dsn's dialer (as
// forwardCancel sends a cancel request where the session's backend is): with several hosts in
// local_dsn, the first that takes a connection need not be the one a backend is on, and has no
// process of its id, or another's. A zero at connects as local_dsn says.
func (s *Shim) connectAt(ctx context.Context, at backendAddr) (*pgconn.PgConn, error) {
	cfg := s.ownCfg.Copy()
	if dial := cfg.DialFunc; at.addr != "" && dial != nil {
		cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, at.network, at.addr)
		}
	}
	return pgconn.ConnectConfig(ctx, cfg)
}

// Barrier ends a handover's drain (DESIGN §3 handover, rule 2), after Drain and before the
// Shipper turns backup: it waits until the peer has every plain commit made on the local
// database so far. Drain waits only for commits the shim saw; an autocommit statement it took
// for a read that wrote all the same (a writing function created behind its back) committed
// plainly and was answered at once, and may be unshipped still — "released" would then say
// the peer has everything, and the successor take the next term without it. A transactional
// logical message written on the local database marks the stream; the Shipper must ship every
// plain commit before it (WaitShipped, xid 0) within commit_timeout (extended, as for a plain
// commit, while a decoder behind reads on or a large one ships) and ctx's deadline, which ends
// the wait at once.
//
// Only a shim whose last mode of term that takes writes was dual, and that has not gone solo
// in term since, waits: solo, peer_synced = false is recorded already. Without a Peer that
// ships plain commits there is nothing to wait for. When the wait fails (the peer does not take
// it in time, the Shipper is not in step, the mark cannot be written), the peer may lack a
// commit: as for a plain commit the peer did not take during a handover (peerLacks), term
// counts as one the shim committed alone in (WentSolo) and OnPeerDown records peer_synced =
// false before the release is published; the error says why.
//
// A Shipper not in step (the peer lost, a catch-up under way or refused) fails the wait at
// once, though the peer may lack nothing: a master frozen whole comes back after the other site
// took a newer term, its commits in flight lose the peer (which refuses its stale term), and its
// release, on learning of that term, finds the Shipper down. Counted as committed alone in, the
// term was reported as a split brain, and failback to this site stopped for good, for in-doubt
// dual commits the resolver settles on both databases (TestBarrierOutOfStepNothingLacking,
// TestBarrierAfterInDoubtSettled). What the barrier vouches for is the stream before the mark,
// not the link: when the Shipper tells from its journal that the peer has every plain commit
// before the mark (ShippedBefore: each one shipped or found on the peer), the barrier holds,
// as it would have had the link stayed up; a plain commit there that was never shipped, or a
// journal that cannot tell (events dropped, the decoder short of the mark, a divergence),
// still fails it (TestBarrierOutOfStepPlainUnshipped).
func (s *Shim) Barrier(ctx context.Context, term uint64) error {
	w, ok := s.opts.Peer.(shipWaiter)
	if !ok {
		return nil
	}
	if last := s.mode.master.Load(); last == nil || last.term != term || last.mode != ModeDual || s.WentSolo(term) {
		return nil
	}
	start := time.Now()
	mark, err := s.barrier(ctx, w)
	if c, ok := w.(shipChecker); ok && errors.Is(err, errNotInStep) && mark != 0 {
		if cerr := c.ShippedBefore(ctx, mark); cerr != nil {
			err = fmt.Errorf("%w; %w", err, cerr)
		} else {
			s.log.Info("txshim: handover barrier: the peer is not in step, but it has every plain commit before the mark", "term", term,
				"mark", mark, "not_in_step", err, "waited", time.Since(start).Round(time.Millisecond))
			return nil
		}
	}
	if err == nil {
		s.log.Debug("txshim: handover barrier: the peer has every commit", "term", term, "waited", time.Since(start))
		return nil
	}
	s.stats.peerErrs.Add(1)
	s.log.Warn("txshim: handover barrier: the peer may lack a commit; recording peer_synced = false", "term", term,
		"waited", time.Since(start).Round(time.Millisecond), "err", err)
	s.peerLacks(term)
	return err
}

// DrainRanOut is Barrier's part for a handover's drain that ran out (Drain failed): a commit
// or procedure in flight may have committed on the local database before Drain ended it — a
// procedure's commits, a plain commit, each answered or not — or after, where Drain could not
// end it, and the Shipper, turned backup once the drain ends, ships none of that; nor did the
// barrier run, so a plain commit made before may be unshipped too. As for a failed barrier,
// term counts as one the shim committed alone in (WentSolo) and OnPeerDown records
// peer_synced = false before the release is published, so that the successor does not take
// the next term without them. Only a shim whose last mode of term that takes writes was dual,
// and that has not gone solo in term since (solo, peer_synced = false is recorded already).
func (s *Shim) DrainRanOut(term uint64) {
	if last := s.mode.master.Load(); last == nil || last.term != term || last.mode != ModeDual || s.WentSolo(term) {
		return
	}
	s.log.Warn("txshim: handover drain ran out with commits in flight: the peer may lack what they commit; recording peer_synced = false", "term", term)
	s.peerLacks(term)
}

// shipChecker is a Peer that tells, in step with the peer or not, whether the peer has every
// plain commit before a stream position (the Shipper: ShippedBefore).
type shipChecker interface {
	ShippedBefore(ctx context.Context, mark pglogrepl.LSN) error
}

// barrier marks the local stream and waits until the Shipper shipped every plain commit before
// the mark (see Barrier). It returns the mark (0: none written) with the wait's error.
func (s *Shim) barrier(ctx context.Context, w shipWaiter) (pglogrepl.LSN, error) {
	// WaitShipped takes its ctx's deadline for the soft one (commit_timeout, extended while
	// the decoder or a large ship makes progress) and a cancel for the end: ctx's deadline is
	// the end.
	hard, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	mark, err := s.markApart(hard)
	if err != nil {
		return 0, err
	}
	// Not context.WithTimeout(hard, …): done at commit_timeout, that context would no longer
	// pass on hard's end, and WaitShipped, extending its wait past the soft deadline (a
	// decoder behind, a plain commit queued behind one under way), ran past ctx's deadline.
	soft := softDeadline{Context: hard, at: time.Now().Add(s.cfg.CommitTimeout)}
	if err := w.WaitShipped(soft, 0, mark); err != nil {
		if ctx.Err() != nil {
			return mark, fmt.Errorf("not shipped before the handover's bound: %w", ctx.Err())
		}
		return mark, err
	}
	return mark, nil
}

// markApart writes a transactional logical message on a connection of its own to the local
// database, marking the stream after every commit made there so far, and returns its position.
func (s *Shim) markApart(ctx context.Context) (pglogrepl.LSN, error) {
	conn, err := pgconn.ConnectConfig(ctx, s.ownCfg.Copy())
	if err != nil {
		return 0, fmt.Errorf("cannot mark the stream: %w", err)
	}
	rr := conn.ExecParams(ctx, markSQL, nil, nil, nil, nil).Read()
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	conn.Close(cctx)
	ccancel()
	if rr.Err != nil {
		return 0, fmt.Errorf("cannot mark the stream: %w", rr.Err)
	}
	var mark pglogrepl.LSN
	if len(rr.Rows) == 1 && len(rr.Rows[0]) == 1 {
		mark, err = pglogrepl.ParseLSN(string(rr.Rows[0][0]))
	}
	if err != nil {
		return 0, fmt.Errorf("cannot mark the stream: %w", err)
	}
	if mark == 0 {
		return 0, errors.New("cannot mark the stream: no position")
	}
	return mark, nil
}

// softDeadline is a context that reports at as its deadline but ends only with its parent:
// WaitShipped takes the deadline for the soft one and the parent's end for the hard one.
type softDeadline struct {
	context.Context
	at time.Time
}

func (c softDeadline) Deadline() (time.Time, bool) { return c.at, true }

// commitGate lets write commits through unless a hold is in place (see HoldCommits).
type commitGate struct {
	mu     sync.Mutex
	active int // commits between enter and leave
	// slow counts what may run long or wait for other transactions' locks while counted:
	// procedures (enterProc, their whole run) and commits of transactions believed not to have
	// written (track). A hold waits for them first (pausing) without stopping write commits, so
	// that a procedure waiting for a row lock of a transaction about to commit does not stop
	// that commit, nor a long procedure every write commit for the hold's whole wait.
	slow    int
	pausing bool // a hold waits for slow ones: none new is counted
	held    bool // a hold is granted or waiting for the commits in flight
	changed chan struct{}
	// owners: the sessions counted (active or slow), each as many times as it is: a drain
	// whose bound ran out ends them (Shim.Drain). The resolver's CommitAlone counts without
	// a session.
	owners map[*session]int
	// orphans: the backends, by process id and server, of sessions that ended in flight, not
	// known gone (Shim.orphaned); true: the session was counted in the gate, and its backend
	// counts as slow. watching: watchOrphans runs.
	orphans  map[orphan]bool
	watching bool
}

// ownLocked counts who (nil: no session) as one more in the gate. Called with mu held.
func (g *commitGate) ownLocked(who *session) {
	if who == nil {
		return
	}
	if g.owners == nil {
		g.owners = make(map[*session]int)
	}
	g.owners[who]++
}

// disownLocked undoes ownLocked. Called with mu held.
func (g *commitGate) disownLocked(who *session) {
	if who == nil {
		return
	}
	if g.owners[who]--; g.owners[who] <= 0 {
		delete(g.owners, who)
	}
}

// orphanCount returns how many backends of sessions that ended in flight are watched.
func (g *commitGate) orphanCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.orphans)
}

// orphan names the backend of a session that ended in flight: its process id, on the server at
// (the session's backend connection's remote address).
type orphan struct {
	pid string
	at  backendAddr
}

// inFlight returns the sessions counted in the gate now, and the orphans' backends.
func (g *commitGate) inFlight() ([]*session, []orphan) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ss := make([]*session, 0, len(g.owners))
	for s := range g.owners {
		ss = append(ss, s)
	}
	orphans := make([]orphan, 0, len(g.orphans))
	for o := range g.orphans {
		orphans = append(orphans, o)
	}
	return ss, orphans
}

// orphaned is told by a session that ends (session.close) with its backend not known gone:
// counted in the gate, or with something sent while the mode took writes unanswered
// (unwrappedInFlight), it may be running what it counted — a procedure, a COMMIT, a statement
// that writes — which PostgreSQL goes on with until it next writes to the closed connection,
// and may commit. Its backend then stays in flight (orphans) until it is gone from
// pg_stat_activity: a handover's Drain waits for it, and ends it when its bound runs out
// (endInFlight); one whose session was counted in the gate counts as slow there, as the session
// did, so that a hold waits for it too. One goroutine watches them all from one connection of
// the shim's own (watchOrphans).
func (s *Shim) orphaned(sess *session) {
	pid, _, _ := strings.Cut(sess.cancelKey, ":")
	mayWrite := sess.mayWriteInFlight()
	g := &s.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	counted := g.owners[sess] > 0
	if (!counted && !mayWrite) || pid == "" {
		return
	}
	if g.orphans == nil {
		g.orphans = make(map[orphan]bool)
	}
	o := orphan{pid, addrOf(sess.backend.RemoteAddr())}
	if _, ok := g.orphans[o]; ok {
		return
	}
	g.orphans[o] = counted
	if counted {
		g.slow++
	}
	s.log.Info("txshim: a session ended with a commit, procedure or statement in flight; waiting for its backend to end", "pid", pid)
	if !g.watching {
		g.watching = true
		go s.watchOrphans()
	}
}

// watchOrphans polls pg_stat_activity until every orphan's backend is gone (orphaned), on the
// server the backend is on (one connection to each; with several hosts in local_dsn, the first
// that takes a connection need not be the backend's: TestDrainOrphanOtherHost). When that
// server's database does not answer, its orphans no longer count: a Drain's end could not reach
// them either.
func (s *Shim) watchOrphans() {
	g := &s.gate
	conns := map[backendAddr]*pgconn.PgConn{}
	defer func() {
		for _, conn := range conns {
			conn.Close(context.Background())
		}
	}()
	// drop forgets the orphans in gone — those asked about and not found: one that came while
	// the question ran is not in its answer, and lives on (TestOrphanWhileWatchAsks) — and
	// tells whether none is left, the watch then over.
	drop := func(gone []orphan) bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, o := range gone {
			counted, ok := g.orphans[o]
			if !ok {
				continue
			}
			delete(g.orphans, o)
			if counted {
				g.slow--
			}
		}
		g.notifyLocked()
		if len(g.orphans) == 0 {
			g.watching = false
			return true
		}
		return false
	}
	for {
		_, orphans := g.inFlight()
		byAddr := map[backendAddr][]string{}
		for _, o := range orphans {
			byAddr[o.at] = append(byAddr[o.at], o.pid)
		}
		var gone []orphan
		for at, pids := range byAddr {
			alive, err := s.aliveAt(conns, at, pids)
			if err != nil {
				s.log.Warn("txshim: cannot watch the backends of sessions that ended in flight", "server", at.addr, "err", err)
				if conn := conns[at]; conn != nil {
					conn.Close(context.Background())
					delete(conns, at)
				}
			}
			for _, pid := range pids {
				if !alive[pid] {
					gone = append(gone, orphan{pid, at})
				}
			}
		}
		if drop(gone) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// aliveAt returns which of the backends pids are still in the pg_stat_activity of the server
// at, asked over conns' connection to it (made when there is none).
func (s *Shim) aliveAt(conns map[backendAddr]*pgconn.PgConn, at backendAddr, pids []string) (map[string]bool, error) {
	conn := conns[at]
	if conn == nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.StartupTimeout)
		c, err := s.connectAt(ctx, at)
		cancel()
		if err != nil {
			return nil, err
		}
		conn, conns[at] = c, c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rr := conn.ExecParams(ctx, "SELECT pid::pg_catalog.text FROM pg_catalog.pg_stat_activity WHERE pid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int4[])",
		[][]byte{[]byte("{" + strings.Join(pids, ",") + "}")}, nil, nil, nil).Read()
	if rr.Err != nil {
		return nil, rr.Err
	}
	alive := make(map[string]bool, len(rr.Rows))
	for _, r := range rr.Rows {
		if len(r) == 1 {
			alive[string(r[0])] = true
		}
	}
	return alive, nil
}

// wait returns the channel closed at the gate's next change. Called with mu held.
func (g *commitGate) waitLocked() <-chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

func (g *commitGate) notifyLocked() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// waitWhileLocked waits, with mu held on entry and on return, until busy() is false or ctx ends.
func (g *commitGate) waitWhileLocked(ctx context.Context, busy func() bool) error {
	for busy() {
		ch := g.waitLocked()
		g.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			g.mu.Lock()
			return ctx.Err()
		}
		g.mu.Lock()
	}
	return nil
}

// enter waits while a hold is in place, then counts the caller's commit as active: who's
// (nil: the resolver's).
func (g *commitGate) enter(ctx context.Context, who *session) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.waitWhileLocked(ctx, func() bool { return g.held }); err != nil {
		return err
	}
	g.active++
	g.ownLocked(who)
	return nil
}

// tryEnter is enter without waiting: it reports whether it counted the caller's commit (no
// hold in place).
func (g *commitGate) tryEnter(who *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		return false
	}
	g.active++
	g.ownLocked(who)
	return true
}

// tryEnterProc is enterProc without waiting: it reports whether it counted the caller's
// procedure, as track counts a commit that may be slow.
func (g *commitGate) tryEnterProc(who *session) bool { return g.track(who) }

// track counts as active, without waiting, the commit of a transaction believed not to have
// written (it may have all the same), unless a hold is in place; it reports whether it did
// (then leave ends it). A hold already granted is not waited for: the caller learns first
// whether the transaction wrote, and one that did enters as any write.
func (g *commitGate) track(who *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held || g.pausing {
		return false
	}
	g.slow++
	g.ownLocked(who)
	return true
}

// enterProc waits while a hold is in place or waits for slow ones, then counts the caller's
// procedure as active (leaveSlow ends it). A session counted already (a procedure of its
// request sent before the Sync, session.procGate) does not wait: a hold waits for it.
func (g *commitGate) enterProc(ctx context.Context, who *session) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.waitWhileLocked(ctx, func() bool { return (g.held || g.pausing) && (who == nil || g.owners[who] == 0) }); err != nil {
		return err
	}
	g.slow++
	g.ownLocked(who)
	return nil
}

// leave ends what enter or tryEnter counted for who.
func (g *commitGate) leave(who *session) {
	g.mu.Lock()
	g.active--
	g.disownLocked(who)
	g.notifyLocked()
	g.mu.Unlock()
}

// leaveSlow ends what track or enterProc counted for who.
func (g *commitGate) leaveSlow(who *session) {
	g.mu.Lock()
	g.slow--
	g.disownLocked(who)
	g.notifyLocked()
	g.mu.Unlock()
}

// idle waits until no commit is between enter and leave, nor procedure or tracked commit
// counted.
func (g *commitGate) idle(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.waitWhileLocked(ctx, func() bool { return g.active+g.slow > 0 }); err != nil {
		return fmt.Errorf("%d commits still in flight: %w", g.active+g.slow, err)
	}
	return nil
}

func (g *commitGate) hold(ctx context.Context) (func(), error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Another hold first: wait for its release.
	if err := g.waitWhileLocked(ctx, func() bool { return g.held || g.pausing }); err != nil {
		return nil, err
	}
	// Procedures and tracked commits first, write commits still going through: a procedure
	// may wait for a row lock of a transaction whose commit a hold would stop.
	g.pausing = true
	if err := g.waitWhileLocked(ctx, func() bool { return g.slow > 0 }); err != nil {
		g.pausing = false
		g.notifyLocked()
		return nil, fmt.Errorf("hold commits: %d procedures still running: %w", g.slow, err)
	}
	g.pausing, g.held = false, true
	if err := g.waitWhileLocked(ctx, func() bool { return g.active+g.slow > 0 }); err != nil {
		g.held = false
		g.notifyLocked()
		return nil, fmt.Errorf("hold commits: %d still committing: %w", g.active+g.slow, err)
	}
	return sync.OnceFunc(func() {
		g.mu.Lock()
		g.held = false
		g.notifyLocked()
		g.mu.Unlock()
	}), nil
}

// CommitAlone runs commit — the resolver's COMMIT PREPARED, on this site's database alone, of a
// gid of this site's prepared in term older whose peer database does not answer
// (ResolverConfig.CommitAlone) — as one of the shim's solo commits, and reports whether it ran
// it: only while the shim is solo in a term after older, checked past the commit gate, so that
// a hold (catch-up's tail) waits for it and a drain (a handover's release, which sets a mode
// without writes first) either waits for it or makes it refuse. Committed so, the gid counts as
// committed alone in that term (WentSolo), as any solo commit; the slot, never confirmed past it,
// ships it at the next catch-up — only when the Peer says it will (aloneShipper): a journal
// entry of a backup's own transaction taken for a suspect (a restart as backup while the local
// term record named another site: bypass boundary 0) holds no changes and is never shipped, and
// one given up (Abandon) is gone; committed alone, such a gid would be on this site's database
// only. It stays in doubt then, and the first pass that reaches both databases settles it.
//
// A shim dual in a term after older with the peer not in step — a promotion to a peer database
// that is down leaves it so until the first commit goes solo — goes solo first, as that commit
// would (peerDown: announced and acknowledged, never with peer_down = "block"). Waiting for a
// commit to do it could wait for ever: the gid's row locks hold every write that touches its
// rows, and when those are all the writes there are (a few hot rows), no commit comes.
func (s *Shim) CommitAlone(ctx context.Context, gid string, older uint64, commit func() error) (bool, error) {
	if err := s.gate.enter(ctx, nil); err != nil {
		return false, err
	}
	defer s.gate.leave(nil)
	w, ok := s.opts.Peer.(aloneShipper)
	cur := s.mode.peek()
	if ok && cur.mode == ModeDual && cur.term > older && s.cfg.PeerDown != config.PeerDownBlock && !w.PeerSynced() && w.ShipsAlone(gid) &&
		s.peerDown(cur.term, fmt.Errorf("the resolver cannot reach the peer database, and %s of term %d is in doubt", gid, older)) {
		cur = s.mode.peek()
	}
	if cur.mode != ModeSolo || cur.term <= older {
		return false, nil
	}
	if !ok || !w.ShipsAlone(gid) {
		s.log.Warn("txshim: an in-doubt transaction of an earlier term is not committed alone: the shipper holds no changes of it to ship", "gid", gid)
		return false, nil
	}
	s.mode.noteSolo(cur.term)
	return true, commit()
}

// aloneShipper is the Peer's part of CommitAlone (Shipper.ShipsAlone, Shipper.PeerSynced).
type aloneShipper interface {
	ShipsAlone(gid string) bool
	PeerSynced() bool
}

// InFlight reports whether a session is carrying out gid's dual commit: from before its local
// PREPARE until the session is done with it (ResolverConfig.InFlight).
func (s *Shim) InFlight(gid string) bool {
	_, ok := s.inflight.Load(gid)
	return ok
}

// Mode returns the current mode and term.
func (s *Shim) Mode() (Mode, uint64) {
	ms := s.mode.peek()
	return ms.mode, ms.term
}

// Stats returns the counters.
func (s *Shim) Stats() Stats {
	c := &s.stats
	return Stats{
		SessionsActive: c.active.Load(),
		SessionsTotal:  c.total.Load(),
		SessionsInTx:   c.inTx.Load(),
		CommitsDual:    c.dual.Load(),
		CommitsSolo:    c.solo.Load(),
		CommitsPlain:   c.plain.Load(),
		Unwrapped:      c.unwrapped.Load(),
		PeerErrors:     c.peerErrs.Load(),
		Refused:        c.refused.Load(),
		LeftInDoubt:    c.leftInDoubt.Load(),
	}
}

// peerDown switches a dual shim of term to solo after a peer prepare with an unknown outcome,
// calling OnPeerDown first (DESIGN §3: going solo is announced first). Sessions arriving while a
// call runs wait for it instead of calling again. It reports whether the shim is solo in term
// now: false when the role changed meanwhile or OnPeerDown refused, and the caller must not
// commit alone.
func (s *Shim) peerDown(term uint64, cause error) bool {
	gen := s.peerDownGen.Load()
	s.peerDownMu.Lock()
	defer s.peerDownMu.Unlock()
	cur := s.mode.peek()
	if cur.term != term || cur.mode != ModeDual {
		// Someone else switched (the caller commits alone: noted), or the role changed.
		return cur.term == term && cur.mode == ModeSolo && s.commitsAlone(term)
	}
	if s.peerDownGen.Load() != gen {
		return false // a call this session waited for refused: its answer holds for this one too
	}
	s.log.Warn("txshim: the peer database does not answer; going solo", "term", term, "err", cause)
	if s.opts.OnPeerDown != nil && !s.opts.OnPeerDown() {
		s.peerDownGen.Add(1)
		s.log.Error("txshim: not going solo: this site may not commit alone now; the commit is left for the resolver", "term", term)
		return false
	}
	if s.mode.swap(cur, &modeState{mode: ModeSolo, term: term}) {
		return s.commitsAlone(term)
	}
	now := s.mode.peek()
	return now.term == term && now.mode == ModeSolo && s.commitsAlone(term)
}

// peerLacks is peerDown for a plain commit of term that the peer did not take, with
// peer_down = "block", after this site stopped being master of term (a handover under way), or
// refused by the peer database for the term (a newer term there, or this one of another master):
// committed on this site's database only, the peer lacks it, so OnPeerLacks (or OnPeerDown,
// its answer ignored) records peer_synced = false (the shim's mode stays as it is) and the
// term counts as one this site committed alone in (WentSolo). Without it the record went on
// saying the peer had everything — released so in a handover — and the other site could take
// over without that commit. A role given up meanwhile does not stop it: the commit is made;
// the node takes the word while it drains its release (gossip.Node.SetPeerSynced).
func (s *Shim) peerLacks(term uint64) {
	s.peerDownMu.Lock()
	defer s.peerDownMu.Unlock()
	s.mode.noteSolo(term)
	switch {
	case s.opts.OnPeerLacks != nil:
		s.opts.OnPeerLacks()
	case s.opts.OnPeerDown != nil:
		s.opts.OnPeerDown()
	}
	// Again once recorded: a peer_synced = true published meanwhile (PeerHasAll) cleared the
	// note, and the record says false after it.
	s.mode.noteSolo(term)
}

// commitsAlone notes, before a caller of peerDown commits alone in term, that it may (WentSolo),
// and returns true.
func (s *Shim) commitsAlone(term uint64) bool {
	s.mode.noteSolo(term)
	return true
}

// Serve accepts sessions until ctx ends, then closes the listener and every session and returns
// once all session goroutines have ended.
func (s *Shim) Serve(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	if s.fit {
		s.fitPending.Store(true)
		s.fitIfPending(ctx)
	}
	s.funcs.start(ctx)
	defer s.funcs.stop()

	var wg sync.WaitGroup
	var serveErr error
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				serveErr = fmt.Errorf("txshim: listener closed: %w", err)
				break
			}
			// Out of file descriptors and the like: wait, the load may pass.
			s.log.Warn("txshim: accept", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, conn)
		}()
	}
	ln.Close()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.close()
	}
	s.mu.Unlock()
	wg.Wait()
	return serveErr
}

// ownConnections is what the sidecar keeps for itself on the local database beside the client
// sessions: the resolver, the catalog reads (funcs.go), term record saves, promotion's
// sequence checks, tandem verify and resync.
const ownConnections = 10

// fitIfPending fits the session cap (fitSessions) unless done: at Serve's start, and then
// before each session takes a slot until the local database has answered — one that starts
// after the sidecar is asked when the first clients come, before they can take every
// connection it has. Sessions that start while one asks wait for its answer, and do not ask
// again when it began after they came: a database that hangs costs each the attempt under way
// and at most one more, each bounded by 5 s.
func (s *Shim) fitIfPending(ctx context.Context) {
	if !s.fitPending.Load() {
		return
	}
	came := time.Now()
	s.fitMu.Lock()
	defer s.fitMu.Unlock()
	if !s.fitPending.Load() || s.fitTried.After(came) {
		return
	}
	s.fitTried = time.Now()
	if s.fitSessions(ctx) {
		s.fitPending.Store(false)
	}
}

// fitSessions lowers the default session cap to what the local database can serve beside the
// sidecar's own connections: at PostgreSQL's default max_connections of 100, 256 sessions
// could take every connection, and the resolver and the term record saves would then be
// refused with the clients' load. Called by fitIfPending (under fitMu); ok reports whether the
// database answered (until it does, sessions keep the default).
func (s *Shim) fitSessions(ctx context.Context) (ok bool) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, s.ownCfg.Copy())
	if err != nil {
		if !s.fitWarned {
			s.fitWarned = true
			s.log.Warn("txshim: cannot read the local database's connection limit; sessions stay capped at the default until it answers", "max_sessions", s.slots.limit(), "err", err)
		}
		return false
	}
	defer conn.Close(context.WithoutCancel(cctx))
	rr := conn.ExecParams(cctx, "SELECT pg_catalog.current_setting('max_connections')::pg_catalog.int4"+
		" OPERATOR(pg_catalog.-) pg_catalog.current_setting('superuser_reserved_connections')::pg_catalog.int4"+
		" OPERATOR(pg_catalog.-) COALESCE(pg_catalog.current_setting('reserved_connections', true)::pg_catalog.int4, 0)", nil, nil, nil, nil).Read()
	if rr.Err != nil && !fitRefused(rr.Err) {
		// Not an answer: the connection lost (the database restarting, the backend
		// terminated), the query's time run out. The next session start asks again
		// (TestFitSessionsQueryLost).
		if !s.fitWarned {
			s.fitWarned = true
			s.log.Warn("txshim: cannot read the local database's connection limit; sessions stay capped at the default until it answers", "max_sessions", s.slots.limit(), "err", rr.Err)
		}
		return false
	}
	if rr.Err != nil || len(rr.Rows) != 1 {
		s.log.Warn("txshim: cannot read the local database's connection limit; sessions stay capped at the default", "max_sessions", s.slots.limit(), "err", rr.Err)
		return true // asked: a refusal will not change
	}
	avail, err := strconv.Atoi(string(rr.Rows[0][0]))
	if err != nil {
		return true
	}
	n := max(avail-ownConnections, 1)
	if n >= s.slots.limit() {
		return true
	}
	s.slots.setLimit(n)
	s.starting.setLimit(maxStartups(n))
	s.log.Info("txshim: sessions capped below the local database's connection limit, leaving room for the sidecar's own",
		"max_sessions", n, "database_connections", avail, "kept", ownConnections)
	return true
}

// fitRefused tells whether err, of fitSessions' query, is the local database's refusal of it,
// which asking again will not change: an error the server gave for the query itself. A lost
// connection, a timeout, a session the server ended (FATAL: terminated, shutting down), a
// cancel (57), a lack of resources (53) or a connection error (08) is not.
func fitRefused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	if sev := pgErr.SeverityUnlocalized; sev != "ERROR" && (sev != "" || pgErr.Severity != "ERROR") {
		return false // FATAL, PANIC: the session ended
	}
	switch pgErr.Code[:min(2, len(pgErr.Code))] {
	case "08", "53", "57":
		return false
	}
	return true
}

// limiter counts what is taken of a limit that may be lowered while some is taken: what is
// taken then stays, and nothing more is until it is below the new limit.
type limiter struct {
	mu        sync.Mutex
	held, max int
}

// take takes one unless the limit is reached.
func (l *limiter) take() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held >= l.max {
		return false
	}
	l.held++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	l.held--
	l.mu.Unlock()
}

func (l *limiter) limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.max = n
	l.mu.Unlock()
}

// maxStartups bounds the connections in startup at once (reading the startup packet,
// TLS, authentication): the sessions allowed, and room for cancel requests.
func maxStartups(sessions int) int { return sessions + 16 }

// serveConn owns one client connection from accept to close.
func (s *Shim) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if !s.starting.take() {
		// Connections in startup hold no session slot: bounded here, so that a flood of
		// silent ones (each held up to StartupTimeout) cannot take every file descriptor.
		s.log.Debug("txshim: too many connections in startup; closed", "remote", conn.RemoteAddr().String())
		return
	}
	su, err := s.readStartup(ctx, conn)
	if err == nil && su != nil {
		// Asked while the connection still counts as one in startup: those that wait for the
		// fitting (up to twice fitSessions' timeout when the database is silent) are bounded
		// with the rest, not one per startup packet that came.
		s.fitIfPending(ctx)
	}
	s.starting.release()
	if err != nil {
		s.log.Debug("txshim: session not started", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	if su == nil {
		return // a cancel request, served without a slot
	}
	if !s.slots.take() {
		writeFatal(su.client, "53300", "tandem: too many sessions")
		return
	}
	defer s.slots.release()
	sess, err := s.startSession(ctx, su)
	if err != nil {
		s.log.Debug("txshim: session not started", "remote", conn.RemoteAddr().String(), "err", err)
		return
	}
	if started := s.hooks.started.get(); started != nil {
		started()
	}
	s.mu.Lock()
	if ctx.Err() != nil {
		s.mu.Unlock()
		sess.close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.cancels[sess.cancelKey] = sess.backend.RemoteAddr()
	s.mu.Unlock()
	s.stats.active.Add(1)
	s.stats.total.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		delete(s.cancels, sess.cancelKey)
		s.mu.Unlock()
		s.stats.active.Add(-1)
	}()
	if err := sess.greet(); err != nil {
		s.log.Debug("txshim: session not started", "remote", conn.RemoteAddr().String(), "err", err)
		sess.close()
		return
	}
	sess.run(ctx)
}
