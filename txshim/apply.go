package txshim

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// applyConn is one peer connection that applies decoded transactions (DESIGN §5.2 "Apply").
// It runs with session_replication_role = replica (no triggers, no foreign-key checks: the
// source checked them) under its own replication origin, so that the peer's decoder skips
// what it applies when the peer's site becomes master.
//
// PostgreSQL 15 lets a replication origin be active in one session at a time, so each pool
// connection has its own origin: tandem_<source> for the first, tandem_<source>#<n> for the
// others. All of them mark the transactions as coming from the source site.
type applyConn struct {
	dsn        string // for the watchdog's own connection (terminateBlockers)
	source     string // the site whose transactions it applies: their master (the term check)
	logger     *slog.Logger
	onPrepared func() // ShipperConfig.OnPreparedBlocker
	conn       *pgconn.PgConn
	stmts      map[applyStmt]string // prepared statement name on this connection
	next       int                  // names are never reused, even of statements whose Parse failed
	// rels holds what this connection learned of published tables from the peer's catalog
	// (peerRels), by relation definition (relKey).
	rels map[string]*peerRel
	// ddl counts the DDL statements the pool's connections ran (applyPool.ddl; may be nil);
	// relsAt is its value when rels was last emptied. DDL can change what rels holds without
	// changing the relation definition (a column made an identity, a table made anew as a
	// partitioned one), so a connection learns anew after any connection ran one.
	ddl    *atomic.Uint64
	relsAt uint64
	copied *atomic.Int64 // counts the rows it applied through COPY; may be nil
	own    *ownPIDs      // the backend pids of its pool's connections (applyPool.own); may be nil
	// noLSN: the peer's tandem.decisions has no lsn column (installed by an earlier version
	// and not since): decision rows go without it, and are never pruned (prune.go).
	noLSN bool
	// moved: of the last apply, the tables in which it may have moved a row (applyTx.moved).
	moved []uint32
	// maxPrepared: the peer's max_prepared_transactions, read when the connection was made
	// (0: not known).
	maxPrepared int
}

// originName is the replication origin of apply connection idx for changes from source.
func originName(source string, idx int) string {
	if idx == 0 {
		return "tandem_" + source
	}
	return "tandem_" + source + "#" + strconv.Itoa(idx)
}

func dialApply(ctx context.Context, dsn, source, origin, name string, logger *slog.Logger) (*applyConn, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse peer DSN: %w", err)
	}
	// The name (applyAppName, or opAppName for the sessions that only finish prepared
	// transactions) says what the session is to an operator and to the resolver (stopApplies).
	// The watchdog (terminateBlockers) knows the pool's own sessions by pid (ownPIDs): a name is
	// anyone's to take.
	cfg.RuntimeParams["application_name"] = name
	// Values are read under the settings the decoder's walsender wrote them under
	// (textSettings). No statement, lock, idle-in-transaction or idle-session timeout of the
	// peer's defaults: the Shipper bounds each apply by its context, while a peer-side timeout
	// would end it with an SQL error on every try (transient: sent again, in vain for an apply
	// longer than it), or end a pooled connection between applies.
	// DDL statements are read as their sessions on the local database read them: with
	// standard_conforming_strings on (the shim serves no session with it off), so that a
	// backslash in a string literal stays one whatever the peer's default. Writable whatever
	// the peer's default (ALTER DATABASE … SET default_transaction_read_only = on for its own
	// site's applications, say): the apply is Tandem's, and a refused one is taken for a
	// divergence (TestPeerDatabaseReadOnlyDefault). Every row or an error (allRows): a policy
	// that applies to the peer DSN's user (not a superuser: FORCE ROW LEVEL SECURITY on a table
	// it owns, or one it does not own) hid the row an UPDATE or DELETE is for, and the apply
	// found none — taken for a divergence, needs resync, though the peer held the row; the
	// refusal names the policy instead (TestApplyRowSecurity). READ COMMITTED whatever the
	// peer's default: the apply replays changes the master decided and ordered, and under a
	// SERIALIZABLE default the peer refused one (40001, on every try) for reading what an
	// earlier apply, prepared there and waiting for its COMMIT PREPARED, wrote — another row
	// of a table both scanned (TestPeerSerializableDefault).
	pinSettings(cfg, textSettings, noTimeouts, ownSession, allRows, map[string]string{"standard_conforming_strings": "on"})
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the peer database: %w", err)
	}
	lit := sqlLiteral(origin)
	// transaction_timeout (PostgreSQL 17) cannot be a startup parameter before 17: set where it exists.
	// A commit is durable before the peer answers it, whatever the database's default: with
	// synchronous_commit = off (ALTER DATABASE … SET, for its applications' speed) a shipped
	// transaction's COMMIT was answered before its WAL was written, the Shipper took it for on
	// the peer and the slot went past it, and a crash of the peer lost it there for good
	// (TestPeerAsyncCommitDefault). local, not on: a stronger default of the peer's (on,
	// remote_apply, for its own standby) stays.
	setup := `SET session_replication_role = replica;
SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'transaction_timeout';
SELECT set_config('synchronous_commit', 'local', false) WHERE current_setting('synchronous_commit') = 'off';
SELECT pg_replication_origin_create(` + lit + `) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = ` + lit + `);
SELECT pg_replication_origin_session_setup(` + lit + `);
SELECT current_setting('max_prepared_transactions');
SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('tandem.decisions') AND attname = 'lsn' AND NOT attisdropped)`
	res, err := conn.Exec(ctx, setup).ReadAll()
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("set up apply session with replication origin %s on the peer: %w", origin, err)
	}
	a := &applyConn{dsn: dsn, source: source, logger: logger, conn: conn, stmts: map[applyStmt]string{}, rels: map[string]*peerRel{}}
	if last := res[len(res)-1]; len(last.Rows) == 1 && string(last.Rows[0][0]) == "f" {
		a.noLSN = true
	}
	if limit := res[len(res)-2]; len(limit.Rows) == 1 {
		a.maxPrepared, _ = strconv.Atoi(string(limit.Rows[0][0]))
	}
	return a, nil
}

// decisionRow adds the decision row of the transaction ending at end in the source's stream.
// For a plain commit's gid (plainGID) a row with another lsn is first deleted: it is the stale
// row of an earlier transaction that had the same xid. The INSERT after it still fails on a
// row with this lsn, or without one (an earlier version's): the transaction is on the peer.
// Dual commits' gids carry the term and go without the DELETE.
func (t *applyTx) decisionRow(end pglogrepl.LSN, plain bool) {
	if t.a.noLSN {
		t.prepared("decision row", "INSERT INTO tandem.decisions (gid) VALUES ($1)", [][]byte{[]byte(t.gid)})
		return
	}
	if plain {
		t.prepared("stale decision row", "DELETE FROM tandem.decisions WHERE gid = $1 AND lsn <> $2",
			[][]byte{[]byte(t.gid), []byte(end.String())})
		t.steps[len(t.steps)-1].stale = t.gid
	}
	t.prepared("decision row", "INSERT INTO tandem.decisions (gid, lsn) VALUES ($1, $2)", [][]byte{[]byte(t.gid), []byte(end.String())})
}

// noTimeouts turns off the statement, lock, idle-in-transaction and idle-session timeouts a
// database's defaults may set for its applications: the apply, resync's copy and verify's read
// are bounded by their contexts, and a peer-side timeout would end them with an SQL error on
// every try. An idle_session_timeout ended the apply's pooled connections between commits:
// each apply after a quiet spell dialled again within its commit's time, and one taken as the
// peer ended it failed with an unknown outcome (TestPeerIdleSessionTimeoutDefault).
// (transaction_timeout, PostgreSQL 17, is turned off where it exists: dialApply.)
var noTimeouts = map[string]string{
	"statement_timeout": "0", "lock_timeout": "0", "idle_in_transaction_session_timeout": "0",
	"idle_session_timeout": "0",
}

// ownSession is what a session of Tandem's own work on either database — not a client's —
// takes in place of the database's and role's defaults (ALTER DATABASE … SET, for the
// database's own applications), beside noTimeouts: READ COMMITTED and writable. Under
// SERIALIZABLE, READ ONLY and DEFERRABLE defaults each of its queries outside a transaction
// block waited for a safe snapshot for as long as a serializable read-write transaction was
// open — often the one it was there to end (TestApplyWatchdogDeferrableDefaults,
// TestLocalDeferrableDefaultsOwnConnections). And no JIT: its queries are catalog reads and
// keyed writes that run in a few milliseconds, which the planner can still price above
// jit_above_cost — the apply's read of a table's columns (peerRelsSQL) was JIT-compiled, 382
// functions, and took 1.09 s on the peer where it runs in milliseconds (auto_explain over the
// test suite), inside a commit's time (TestOwnSessionsNoJIT).
var ownSession = map[string]string{"default_transaction_isolation": "read committed", "default_transaction_read_only": "off", "jit": "off"}

// applyAppName is the application_name of apply sessions.
const applyAppName = "tandem apply"

// opAppName is the application_name of the sessions of the Shipper's opPool, which run COMMIT
// and ROLLBACK PREPARED on the peer and never apply. Named as the apply sessions were, each of
// their transactions under track_activities = off looked to the resolver like an apply on its
// way to naming its gid (stopApplies), and a steady stream of them failed its passes with
// "try again" (TestResolverPassesBusyOpSessionsTrackActivitiesOff). Not one the resolver must
// end: such a session never prepares a gid. It starts with applyAppName, so that an
// operator's look for Tandem's peer sessions by that prefix still finds it; no apply session's
// name (applySessionName: a gid starts with "tandem_") is it.
const opAppName = applyAppName + " finish"

// applySessionName is the application_name of an apply session while it applies gid, by which
// the resolver finds it (stopApplies). PostgreSQL keeps maxAppName bytes of it: past that,
// "tandem apply <gid>" (a site name of up to 32 characters, a ten-digit xid) would show cut
// short and never match, so a longer one keeps the end of the gid — its term and xid, and what
// fits of its site — which tells it from the others.
func applySessionName(gid string) string {
	name := applyAppName + " " + gid
	if len(name) <= maxAppName {
		return name
	}
	const prefix = applyAppName + " .."
	return prefix + gid[len(gid)-(maxAppName-len(prefix)):]
}

// maxAppName is how much of an application_name PostgreSQL keeps: NAMEDATALEN - 1 bytes.
const maxAppName = 63

// blockerGrace is how long an apply runs before its watchdog looks for sessions blocking it.
const blockerGrace = time.Second

// watch starts the watchdog of one apply: after blockerGrace, and again each blockerGrace while
// the apply runs, it terminates the sessions that block it (terminateBlockers). It costs a timer
// on the hot path, nothing more, until the grace is over. stop ends it and waits for a pass
// under way.
func (a *applyConn) watch(ctx context.Context, gid string) (stop func()) {
	pid := a.conn.PID()
	wctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex // held by a pass, and while t is set
	var t *time.Timer
	told := "" // the foreign prepared transactions last named, so each pass does not repeat them
	mu.Lock()
	t = time.AfterFunc(blockerGrace, func() {
		mu.Lock()
		defer mu.Unlock()
		if wctx.Err() != nil {
			return
		}
		prepared, err := terminateBlockers(wctx, a.dsn, pid, a.own.list(), gid, a.logger)
		if err != nil && wctx.Err() == nil {
			hint := ""
			if sqlState(err) == "42501" {
				hint = "the peer DSN's user may only end its own role's sessions: GRANT pg_signal_backend to it"
			}
			a.logger.Warn("apply watchdog: cannot end the sessions blocking the apply", "gid", gid, "err", err, "hint", hint)
		}
		if prepared.foreign != "" && prepared.foreign != told {
			// No resolver settles these and Tandem must not: the apply waits for them until
			// its time is out, and catch-up tries again, each time (TestApplyPeerForeignPrepared).
			told = prepared.foreign
			a.logger.Warn("apply watchdog: a transaction prepared on the peer database outside Tandem blocks the apply; "+
				"Tandem neither commits nor rolls it back: settle it there (COMMIT PREPARED or ROLLBACK PREPARED)",
				"gid", gid, "database", prepared.database, "prepared", prepared.foreign)
		}
		if prepared.any && a.onPrepared != nil {
			a.logger.Info("apply watchdog: a prepared transaction blocks the apply; asking for a resolver pass", "gid", gid)
			a.onPrepared()
		}
		if wctx.Err() == nil {
			t.Reset(blockerGrace)
		}
	})
	mu.Unlock()
	return func() {
		cancel()
		t.Stop()
		mu.Lock() // a pass under way ends (its context is cancelled) and schedules no other
		mu.Unlock()
	}
}

// terminateBlockers ends the sessions that hold locks the apply session pid waits for. The
// peer's database is the backup's, where only Tandem writes (DESIGN §5.2): a session holding
// row locks there is a master that lost its role while a transaction was open (paused, or cut
// off) or a write that bypassed Tandem, and neither may commit. Left alone, it would hold
// every dual commit touching those rows until commit_timeout and then keep catch-up from ever
// finishing. The shipper's other apply sessions (own: their backend pids, as ownPIDs.list gives
// them; a name would not do, as any client can call itself "tandem apply") and prepared
// transactions (pid 0: the resolver's) are spared; prepared reports whether one of the latter
// blocks the apply, and which of them were prepared outside Tandem.
func terminateBlockers(ctx context.Context, dsn string, pid uint32, own, gid string, logger *slog.Logger) (prepared preparedBlock, err error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return prepared, err
	}
	cfg.RuntimeParams["application_name"] = "tandem apply watchdog"
	// READ COMMITTED whatever the peer's defaults: under SERIALIZABLE, READ ONLY and DEFERRABLE
	// ones its query waited for a safe snapshot, for the very serializable transaction it was
	// to end, until cctx ran out, on every pass (TestApplyWatchdogDeferrableDefaults). Bounded
	// by cctx, not by the database's timeouts.
	pinSettings(cfg, noTimeouts, ownSession)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return prepared, err
	}
	defer conn.Close(context.WithoutCancel(cctx))
	pidArg := []byte(strconv.FormatUint(uint64(pid), 10))
	res := conn.ExecParams(cctx, `SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),
	coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''), pg_terminate_backend(a.pid)
FROM pg_stat_activity a
WHERE a.pid = ANY (pg_blocking_pids($1::int)) AND a.pid <> ALL ($2::int[])`,
		[][]byte{pidArg, []byte(own)}, nil, nil, nil).Read()
	if res.Err != nil {
		return prepared, res.Err
	}
	for _, row := range res.Rows {
		logger.Warn("apply watchdog: terminated a session that blocked the apply on the peer database (only Tandem writes to the backup's database)",
			"gid", gid, "pid", string(row[0]), "user", string(row[1]), "application", string(row[2]),
			"client", string(row[3]), "state", string(row[4]), "terminated", string(row[5]) == "t")
	}
	// pg_blocking_pids names a prepared transaction as pid 0.
	res = conn.ExecParams(cctx, `SELECT 0 = ANY (pg_blocking_pids($1::int)), current_database()`, [][]byte{pidArg}, nil, nil, nil).Read()
	if res.Err != nil {
		return prepared, res.Err
	}
	prepared.any = len(res.Rows) == 1 && string(res.Rows[0][0]) == "t"
	if !prepared.any {
		return prepared, nil
	}
	prepared.database = string(res.Rows[0][1])
	_, prepared.foreign, err = peerPrepared(cctx, conn, pid)
	return prepared, err
}

// preparedBlock is what terminateBlockers tells of prepared transactions blocking an apply:
// whether any does, and those prepared outside Tandem on the peer's database (their quoted gids
// and owners, as peerPrepared lists them), which no resolver settles.
type preparedBlock struct {
	any      bool
	database string
	foreign  string
}

func (a *applyConn) close(ctx context.Context) {
	a.own.remove(a.conn.PID())
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	a.conn.Close(cctx)
}

// ownPIDs is the set of backend pids of a shipper's apply connections, of both its pools: the
// sessions its watchdogs spare (terminateBlockers). A nil *ownPIDs is an empty set.
type ownPIDs struct {
	mu   sync.Mutex
	pids map[uint32]struct{}
}

func (o *ownPIDs) add(pid uint32) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pids == nil {
		o.pids = map[uint32]struct{}{}
	}
	o.pids[pid] = struct{}{}
}

func (o *ownPIDs) remove(pid uint32) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.pids, pid)
}

// list gives the set as a PostgreSQL int[] literal.
func (o *ownPIDs) list() string {
	if o == nil {
		return "{}"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ps := make([]string, 0, len(o.pids))
	for pid := range o.pids {
		ps = append(ps, strconv.FormatUint(uint64(pid), 10))
	}
	return "{" + strings.Join(ps, ",") + "}"
}

// applyPool holds up to size apply connections to the peer, made on demand.
type applyPool struct {
	dsn        string
	source     string
	name       string // the application_name of its sessions: applyAppName or opAppName
	logger     *slog.Logger
	onPrepared func()
	copied     *atomic.Int64 // given to its connections (applyConn.copied)
	own        *ownPIDs      // given to its connections (applyConn.own), which it adds to
	ddl        atomic.Uint64 // DDL statements its connections ran (applyConn.ddl)
	slots      chan *applySlot
	noLSN      sync.Once // says once that the peer's decision rows go without their lsn
	// check, when set, runs on each new connection before its first use; an error closes it
	// and get returns the error (Shipper.checkApplyConn).
	check func(ctx context.Context, c *applyConn) error
	// maxPrepared, when set, is given the peer's max_prepared_transactions each new
	// connection read (Shipper.peerMaxPrepared).
	maxPrepared *atomic.Int64
}

type applySlot struct {
	idx int
	c   *applyConn // nil until first use or after the connection broke
}

// newApplyPool makes a pool whose connections use the replication origins of indexes first,
// first+1, … (originName).
func newApplyPool(peerDSN, source, name string, first, size int, logger *slog.Logger, onPrepared func()) *applyPool {
	p := &applyPool{dsn: peerDSN, source: source, name: name, logger: logger, onPrepared: onPrepared, slots: make(chan *applySlot, size)}
	for i := 0; i < size; i++ {
		p.slots <- &applySlot{idx: first + i}
	}
	return p
}

// get returns a slot with a live connection; the caller must put it back.
func (p *applyPool) get(ctx context.Context) (*applySlot, error) {
	var s *applySlot
	select {
	case s = <-p.slots:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a peer connection: %w", ctx.Err())
	}
	if s.c != nil && idleConnGone(s.c.conn.Conn()) {
		p.logger.Info("the peer ended an idle apply connection; dialling it again", "origin", originName(p.source, s.idx))
		s.c.close(ctx)
		s.c = nil
	}
	if s.c == nil {
		if err := p.dial(ctx, s); err != nil {
			p.slots <- s
			return nil, err
		}
	}
	return s, nil
}

// dial gives s, held by the caller and without a connection, a new one.
func (p *applyPool) dial(ctx context.Context, s *applySlot) error {
	c, err := dialApply(ctx, p.dsn, p.source, originName(p.source, s.idx), p.name, p.logger)
	if err != nil {
		return err
	}
	if p.check != nil {
		if err := p.check(ctx, c); err != nil {
			c.close(ctx)
			return err
		}
	}
	c.onPrepared, c.copied, c.ddl, c.own = p.onPrepared, p.copied, &p.ddl, p.own
	if p.maxPrepared != nil && c.maxPrepared > 0 {
		p.maxPrepared.Store(int64(c.maxPrepared))
	}
	p.own.add(c.conn.PID())
	c.relsAt = p.ddl.Load()
	if c.noLSN {
		p.noLSN.Do(func() {
			p.logger.Warn("the peer's tandem.decisions has no lsn column (installed by an earlier version): its decision rows are never pruned; run tandem install")
		})
	}
	s.c = c
	return nil
}

// fill dials, all at once, the connections of the slots nobody holds that have none, and
// returns the first error. Catch-up fills the pools before the peer is marked synced: a
// connection costs a few round trips (startup, session setup, the check of what the peer
// holds), which the first applies after it would otherwise pay within their commit's time —
// catch-up itself ships on one connection at a time, and get hands the slots out in turn.
func (p *applyPool) fill(ctx context.Context) error {
	var empty []*applySlot
	for _, s := range p.takeIdle() {
		if s.c != nil {
			p.slots <- s // in use again at once: only the dials wait
			continue
		}
		empty = append(empty, s)
	}
	errs := make(chan error, len(empty))
	for _, s := range empty {
		go func() { errs <- p.dial(ctx, s) }()
	}
	var err error
	for range empty {
		err = cmp.Or(err, <-errs)
	}
	for _, s := range empty {
		p.slots <- s
	}
	return err
}

// takeIdle takes, without waiting, the slots nobody holds; the caller puts them back.
func (p *applyPool) takeIdle() []*applySlot {
	var idle []*applySlot
	for len(idle) < cap(p.slots) {
		select {
		case s := <-p.slots:
			idle = append(idle, s)
			continue
		default:
		}
		break
	}
	return idle
}

// put returns a slot; a connection whose state is unknown (broken), or that the peer closed
// (a FATAL error such as idle_in_transaction_session_timeout), is closed and redialled by the
// next get.
func (p *applyPool) put(ctx context.Context, s *applySlot, broken bool) {
	if s.c != nil && (broken || s.c.conn.IsClosed()) {
		s.c.close(ctx)
		s.c = nil
	}
	p.slots <- s
}

// closeIdle closes the connections nobody holds, so that the next get dials afresh: after a
// peer outage the pooled connections are dead.
func (p *applyPool) closeIdle(ctx context.Context) {
	for _, s := range p.takeIdle() {
		if s.c != nil {
			s.c.close(ctx)
			s.c = nil
		}
		p.slots <- s
	}
}

// close closes every connection; it waits for outstanding slots to come back.
func (p *applyPool) close(ctx context.Context) {
	taken := make([]*applySlot, 0, cap(p.slots))
	for i := 0; i < cap(p.slots); i++ {
		s := <-p.slots
		if s.c != nil {
			s.c.close(ctx)
			s.c = nil
		}
		taken = append(taken, s)
	}
	for _, s := range taken {
		p.slots <- s
	}
}

// applyEnd says how an applied transaction ends on the peer.
type applyEnd int

const (
	endPrepare applyEnd = iota // PREPARE TRANSACTION gid (dual commit)
	endCommit                  // COMMIT (plain commits shipped from the stream)
)

// applyStmt names a statement an apply connection prepared: its text, and the relation definition
// (relKey) its parameters take their types from, if any.
type applyStmt struct{ rel, sql string }

// pipelineStep is one request queued in an apply pipeline, remembered to read its result.
type pipelineStep struct {
	prepareSQL applyStmt // non-zero: a Parse under name, cached under this key (a.stmts) on success
	name       string
	what       string // for errors: which change this was
	// gid: the transaction it was queued for, for errors: a run (applyRun) pipelines several,
	// and reads a refusal after later ones were queued.
	gid string
	// kind, rel, index: for a step of a row change, what names it (changeWhat), made only for an
	// error rather than for every change.
	kind  byte
	rel   *Relation
	index int
	// decision: the decision row's INSERT whose unique violation says the transaction is on
	// the peer already (endCommit, runs); stale: the gid whose stale decision row this DELETE
	// removes (decisionRow).
	decision bool
	stale    string
}

// describe is what the step was, for an error.
func (s pipelineStep) describe() string {
	if s.what == "" && s.rel != nil {
		return changeWhat(s.index, s.kind, s.rel)
	}
	return s.what
}

// changeWhat names change i of a transaction in errors.
func changeWhat(i int, kind byte, rel *Relation) string {
	return fmt.Sprintf("change %d (%c on %s)", i+1, kind, rel.QualifiedName())
}

// maxApplyStmts bounds the statements an apply connection keeps prepared on the peer, each
// tens of KB of the peer's memory for the connection's life: a REPLICA IDENTITY FULL table's
// rows alone are found by a statement per pattern of nulls among their values (matchRow), up
// to 2^columns of them. Past it they are all deallocated (trimStmts) and prepared anew as used.
const maxApplyStmts = 512

// applyBatch and applyBatchBytes bound the row changes an apply sends before it reads their
// results (their count, and their values' size as changeSize counts it): a large transaction
// goes to the peer in several round trips, with bounded memory on both ends — the pipeline
// holds what it sends until the round trip's Sync, and a thousand changes of large values
// would have been held whole (gigabytes for rows of a few MB).
const (
	applyBatch      = 1000
	applyBatchBytes = 8 << 20
)

// startApply begins an apply on the peer for gid (the first of a run): its pipeline and
// watchdog, and BEGIN, the session's name and the term check (§3 fencing; skipped when term is
// 0) queued for the first round trip. stop ends the watchdog.
func (a *applyConn) startApply(ctx context.Context, gid string, term uint64) (t *applyTx, stop func()) {
	t = &applyTx{a: a, ctx: ctx, gid: gid, pl: a.conn.StartPipeline(ctx)}
	stop = a.watch(ctx, gid)
	if a.ddl != nil {
		// Another connection ran DDL: an apply after it in the stream starts after the peer
		// committed it (txnRows.barrier).
		if n := a.ddl.Load(); n != a.relsAt {
			clear(a.rels)
			a.relsAt = n
		}
	}

	t.trimStmts()
	t.query("begin", "BEGIN")
	// The session is named after the gid while it applies it, so that the resolver can end
	// one still running before it takes the gid for never prepared here (stopApplies). Plain
	// commits are named too: stopApplies waits while a busy apply session has no gid in its
	// name, which should then be only one just starting.
	t.prepared("session name", "SELECT set_config('application_name', $1, true)", [][]byte{[]byte(applySessionName(gid))})
	if term > 0 {
		t.prepared("term check", "SELECT tandem.check_term($1, $2)", [][]byte{[]byte(strconv.FormatUint(term, 10)), []byte(a.source)})
	}
	return t, stop
}

// apply runs txn on the peer (DESIGN §5.3 step 2): BEGIN, the term check (§3 fencing; skipped
// when term is 0), the replication-origin position, every change, the decision row gid and
// PREPARE TRANSACTION gid (or, for endCommit, the decision row first and COMMIT last) — in one
// round trip, or, departing from DESIGN's "one round trip", one per applyBatch changes for a
// large transaction (and around each COPY of a run of inserts: applycopy.go), so that neither
// end buffers a whole bulk load; and around the first look-up of a table's catalog on this
// connection (peerRels). An error that is a *pgconn.PgError means the peer refused it
// and nothing of it stays there; errAlreadyApplied means the peer had committed it before
// (endCommit only); any other error leaves the connection and the outcome unknown.
func (a *applyConn) apply(ctx context.Context, txn *Txn, gid string, term uint64, end applyEnd) error {
	t, stop := a.startApply(ctx, gid, term)
	defer stop()
	defer func() { a.moved = t.moved }()
	// A transaction shipped from the stream (plain commits, catch-up) may be on the peer
	// already: shipped before a crash or a lost reply, and resent by the slot. Its decision row
	// goes first, so that a duplicate fails before any change runs (errAlreadyApplied).
	if end == endCommit {
		t.decisionRow(txn.EndLSN, gid == plainGID(a.source, txn.XID))
		t.steps[len(t.steps)-1].decision = true // its Execute, after a Parse the first time
	}
	switch err := t.changes(txn); {
	case errors.Is(err, errApplyStop):
	case err != nil:
		return err
	default:
		if end == endPrepare {
			t.decisionRow(txn.EndLSN, false)
			t.query("prepare transaction", "PREPARE TRANSACTION "+sqlLiteral(gid))
		} else {
			t.query("commit", "COMMIT")
		}
		if err := t.roundTrip(); err != nil {
			return err
		}
	}
	if err := t.finish(gid); err != nil {
		return err
	}
	switch {
	case t.refused == nil:
		if len(t.replaced) > 0 {
			a.logger.Warn(replacedWarning, "gid", gid, "lsn", txn.EndLSN)
		}
		return nil
	case t.duplicate:
		return errAlreadyApplied
	}
	return t.refused
}

// changes queues txn's replication-origin position and every change. errApplyStop: the peer
// refused one (t.refused). Any other error — a change that cannot be turned into SQL, a spill
// file that cannot be read, a lost peer — leaves the peer transaction open: the pipeline is
// closed, and the connection must be.
func (t *applyTx) changes(txn *Txn) error {
	t.prepared("replication origin", "SELECT pg_replication_origin_xact_setup($1, $2)", [][]byte{
		[]byte(txn.EndLSN.String()), []byte(txn.Time.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))})
	t.restated, t.takenBack = txn.ddlRestated, txn.ddlTakenBack
	err := txn.Each(t.change)
	if err == nil {
		err = t.sendHeldDDL()
	}
	if errors.Is(err, errCopyWrite) {
		err = t.endCopy() // why the COPY ended: a refusal (errApplyStop) or a lost connection
	}
	if err == nil {
		err = t.flushRun()
	}
	if err != nil && !errors.Is(err, errApplyStop) {
		t.abortCopy(err)
		t.pl.Close()
		t.a.forgetPending(t.steps)
	}
	return err
}

// replacedWarning is logged when shipping a plain commit deleted a stale decision row.
const replacedWarning = "shipped a plain commit over the stale decision row of an earlier transaction with the same xid on the peer (this site's database restored or re-initialised?)"

// finish ends t's pipeline, once its last round trip is read, and rolls back the peer
// transaction that a refusal left open. An error is the connection's: the outcome is unknown.
func (t *applyTx) finish(what string) error {
	if err := t.pl.Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return fmt.Errorf("apply %s: close pipeline: %w", what, err)
		}
	}
	if t.refused != nil && t.a.conn.TxStatus() != 'I' {
		if _, err := t.a.conn.Exec(t.ctx, "ROLLBACK").ReadAll(); err != nil {
			return fmt.Errorf("apply %s: roll back after %v: %w", what, t.refused, err)
		}
	}
	return nil
}

// errRunRefused: the peer refused a transaction of a run (applyRun): nothing of the run stays
// there, and its transactions are shipped one at a time (apply) to find which, or to skip one
// the peer had already.
var errRunRefused = errors.New("the peer refused a transaction of the run")

// applyRun applies txns, small plain commits shipped from the stream in stream order, on the
// peer in one transaction: each one's decision row, replication-origin position and changes, and
// one COMMIT for all of them at the end, pipelined in one round trip (more only for what apply
// takes more for: every applyBatch changes, a table's first catalog look-up, a COPY). The peer
// then makes one commit durable where apply would make one per transaction, and the run costs
// one round trip where apply would cost one per transaction: a round trip per transaction of
// the run, as it was, put up to runMax+1 of them within one OpTimeout, and over a link slower
// than OpTimeout/(runMax+1) every run of a backlog ran out of time and its transactions went
// one at a time — catch-up bound by the link's latency, never ending under a steady solo load
// (TestCatchUpSlowLink). A refusal ends the run however many of its transactions it names, so
// which one it was need not be told here: the single path finds out (DESIGN §5.5). gids are their decision-row keys. An error wrapping errRunRefused means
// the peer refused one of them (or had one already: its decision row) and nothing of the run
// stays there; any other error leaves the connection and the outcome unknown, as apply's.
func (a *applyConn) applyRun(ctx context.Context, txns []*Txn, gids []string, term uint64) error {
	t, stop := a.startApply(ctx, gids[0], term)
	defer stop()
	for k, txn := range txns {
		t.gid = gids[k]
		t.decisionRow(txn.EndLSN, gids[k] == plainGID(a.source, txn.XID))
		t.steps[len(t.steps)-1].decision = true
		// The last one's origin position stays: the peer's origin moves once, to the run's end.
		err := t.changes(txn)
		if err != nil && !errors.Is(err, errApplyStop) {
			return err
		}
		if t.refused != nil {
			break
		}
	}
	if t.refused == nil {
		t.query("commit", "COMMIT")
		if err := t.roundTrip(); err != nil {
			return err
		}
	}
	if err := t.finish("a run from " + gids[0]); err != nil {
		return err
	}
	if t.refused != nil {
		return fmt.Errorf("%w: %w", errRunRefused, t.refused)
	}
	for _, gid := range t.replaced {
		a.logger.Warn(replacedWarning, "gid", gid)
	}
	return nil
}

// applyTx is one apply under way: its pipeline, the requests of the round trip under way, the
// peer's first refusal, and a run of inserts waiting to go as one COPY.
type applyTx struct {
	a   *applyConn
	ctx context.Context
	gid string
	pl  *pgconn.Pipeline

	steps     []pipelineStep // those of the round trip under way
	inBatch   int            // changes sent in it
	batchSize int64          // and their size (changeSize)
	replaced  []string       // the gids whose stale decision row a DELETE deleted (decisionRow)
	refused   error          // the peer's first refusal; it skips the rest of the transaction
	duplicate bool           // refused is the decision row's unique violation

	run      []Change    // consecutive copyable inserts into one table, not sent yet
	runFirst int         // the index of run[0] in the transaction
	cp       *copyStream // the COPY a long run is streaming into (applycopy.go)

	// moved: the tables in which the apply may have moved a row that stayed in place on the
	// local database (identityMoves): deleted and inserted again, so that a later apply's
	// change of it must wait for this transaction's commit on the peer (txnRows.appear).
	moved []uint32

	ddlHeld   *Change           // a tandem.ddl insert held back until the next change (change)
	ddlHeldAt int               // its index in the transaction
	restated  map[string]string // the transaction's Txn.ddlRestated
	takenBack map[string]bool   // the transaction's Txn.ddlTakenBack
}

// errApplyStop ends the walk over a transaction's changes once the peer refused one.
var errApplyStop = errors.New("the peer refused a change")

func (t *applyTx) query(what, sql string, params ...[]byte) {
	t.pl.SendQueryParams(sql, params, nil, nil, nil)
	t.steps = append(t.steps, pipelineStep{what: what, gid: t.gid})
}

// prepared queues sql under the connection's prepared statement for it, made (Parse) here
// the first time.
func (t *applyTx) prepared(what, sql string, params [][]byte) { t.preparedFor(what, sql, "", params) }

// preparedFor is prepared for a statement whose parameters take their types from the columns
// of a relation definition (relKey), which it is kept under with its text: PostgreSQL fixes a
// prepared statement's parameter types at its Parse, so after DDL changed a column's type the
// statement of the same text, prepared before, would read the new values in the old type
// (0.1 as a real in a column now double precision, 'ten' as an integer in one now text).
func (t *applyTx) preparedFor(what, sql, rel string, params [][]byte) {
	a := t.a
	key := applyStmt{rel, sql}
	name, ok := a.stmts[key]
	if !ok {
		name = "tandem_apply_" + strconv.Itoa(a.next)
		a.next++
		t.pl.SendPrepare(name, sql, nil)
		t.steps = append(t.steps, pipelineStep{prepareSQL: key, name: name, what: what, gid: t.gid})
		a.stmts[key] = name // optimistic, undone by forgetPending when the Parse did not succeed
	}
	t.pl.SendQueryPrepared(name, params, nil, nil)
	t.steps = append(t.steps, pipelineStep{what: what, gid: t.gid})
}

// trimStmts deallocates the connection's statements once there are maxApplyStmts of them. It
// runs at the start of a round trip: nothing before it there can fail, which would make the
// peer skip the Close messages up to the Sync.
func (t *applyTx) trimStmts() {
	a := t.a
	if len(a.stmts) < maxApplyStmts {
		return
	}
	for _, name := range a.stmts {
		t.pl.SendDeallocate(name)
		t.steps = append(t.steps, pipelineStep{what: "deallocate " + name, gid: t.gid})
	}
	clear(a.stmts)
}

// fail keeps the first error of the apply; the peer skips what follows up to the Sync, and
// the Parse of statements after it may not have happened.
func (t *applyTx) fail(i int, err error) {
	if t.refused != nil {
		return
	}
	t.refused = stepError(t.gid, t.steps, i, err)
	var pgErr *pgconn.PgError
	t.duplicate = i < len(t.steps) && t.steps[i].decision && errors.As(err, &pgErr) && pgErr.Code == "23505"
	t.a.forgetPending(t.steps)
}

// roundTrip sends a Sync and reads the results of steps. A refusal is kept in refused (by
// fail); a lost connection is returned, with the pipeline closed.
func (t *applyTx) roundTrip() error {
	// Step indexes count from 0 again in the next round trip.
	defer func() { t.steps, t.inBatch, t.batchSize = t.steps[:0], 0, 0 }()
	if err := t.pl.Sync(); err != nil {
		t.pl.Close()
		t.a.forgetPending(t.steps)
		return fmt.Errorf("apply %s: send to the peer: %w", t.gid, err)
	}
	for i := 0; ; {
		res, err := t.pl.GetResults()
		if err != nil {
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				t.pl.Close()
				t.a.forgetPending(t.steps)
				return fmt.Errorf("apply %s: read results from the peer: %w", t.gid, err)
			}
			t.fail(i, err)
			continue
		}
		switch r := res.(type) {
		case *pgconn.PipelineSync, nil:
			return nil
		case *pgconn.StatementDescription, *pgconn.CloseComplete:
			i++
		case *pgconn.ResultReader:
			tag, err := r.Close()
			if err != nil {
				t.fail(i, err)
			} else if i < len(t.steps) && t.steps[i].stale != "" && tag.RowsAffected() > 0 {
				t.replaced = append(t.replaced, t.steps[i].stale)
			}
			i++
		}
	}
}

// change takes change i of the transaction: into the COPY a run of inserts streams into, into
// the run of inserts waiting to be long enough for one, or sent after that run.
func (t *applyTx) change(i int, c Change) error {
	// A DDL row is held until the next change: DDL on the local session's temporary objects
	// only is recorded and then taken back in its transaction (tandem.ddl_unrecord, from the
	// DDL guard), a DELETE of that row right behind it. The peer, which has no such objects,
	// must run neither (its replay failed with 42P01 and stopped shipping: TestTempTableDDL).
	// Taken back further on, with other rows written between (an event trigger of the user's
	// that fires before the guard): the hold below does not see it (TestTempDDLTriggerRowBetween).
	if isDDLRow(c) && (c.Kind == ChangeInsert && t.takenBack[ddlRowID(c, c.New)] || c.Kind == ChangeDelete && t.takenBack[ddlRowID(c, c.Old)]) {
		return nil
	}
	if t.ddlHeld != nil {
		if id := ddlRowID(c, c.Old); id != "" && isDDLRow(c) && c.Kind == ChangeDelete && id == ddlRowID(*t.ddlHeld, t.ddlHeld.New) {
			t.ddlHeld = nil
			return nil
		}
		if err := t.sendHeldDDL(); err != nil {
			return err
		}
	}
	if isDDLRow(c) && c.Kind == ChangeInsert {
		if err := t.flushRun(); err != nil {
			return err
		}
		t.ddlHeld, t.ddlHeldAt = &c, i
		return nil
	}
	if !copyable(c) {
		if err := t.flushRun(); err != nil {
			return err
		}
		return t.send(i, c)
	}
	if t.cp != nil && t.cp.rel == c.Rel {
		return t.cp.row(c)
	}
	if t.cp != nil || (len(t.run) > 0 && t.run[0].Rel != c.Rel) {
		if err := t.flushRun(); err != nil {
			return err
		}
	}
	if len(t.run) == 0 {
		t.runFirst = i
	}
	t.run = append(t.run, c)
	if len(t.run) < copyMin {
		return nil
	}
	err := t.startCopy(t.runFirst, t.run)
	t.run = t.run[:0]
	return err
}

// sendHeldDDL sends the DDL row change held back (change), if any.
func (t *applyTx) sendHeldDDL() error {
	if t.ddlHeld == nil {
		return nil
	}
	c := *t.ddlHeld
	t.ddlHeld = nil
	return t.send(t.ddlHeldAt, c)
}

// isDDLRow tells whether c is a change of tandem.ddl.
func isDDLRow(c Change) bool { return c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl" }

// ddlRowID is the id column of a tandem.ddl row in vals (New or Old of a change); "" if absent.
func ddlRowID(c Change, vals []Value) string {
	for i, col := range c.Rel.Columns {
		if col.Name == "id" && i < len(vals) && vals[i].Kind == ValueText {
			return string(vals[i].Data)
		}
	}
	return ""
}

// send queues change i as its statement, and ends the round trip every applyBatch changes.
func (t *applyTx) send(i int, c Change) error {
	// The steps of the change are named after it only when one fails (describe).
	named := func(from int) {
		for k := from; k < len(t.steps); k++ {
			t.steps[k].kind, t.steps[k].rel, t.steps[k].index = c.Kind, c.Rel, i
		}
	}
	if c.Kind == ChangeTruncate {
		prs, err := t.peerRels(c.Truncated)
		if err != nil {
			return err
		}
		from := len(t.steps)
		t.query("", truncateSQL(c, prs))
		named(from)
	} else {
		var pr *peerRel
		if c.Kind == ChangeUpdate || c.Kind == ChangeDelete {
			prs, err := t.peerRels([]*Relation{c.Rel})
			if err != nil {
				return err
			}
			pr = prs[0]
		}
		if c.Kind == ChangeUpdate {
			if moved, unsure := identityMoves(c, pr); moved || len(unsure) > 0 {
				t.moved = addRel(t.moved, c.Rel.ID)
			}
		}
		ins := c
		if (c.Kind == ChangeInsert || c.Kind == ChangeUpdate) && isDDLRow(c) {
			// A peer set up by an older install (run again on the local database only, or
			// stopped before the peer's) lacks the columns of the settings added since: its row
			// goes in without them, which were refused (42703) with every DDL through the shim
			// (TestApplyDDLPeerInstallOlder). The settings are set from the change all the same.
			// So does the rewrite of a row in its transaction (ddl_ctas, ddl_restate_drop: an
			// UPDATE, which set every column of the local row: TestApplyDDLPeerInstallOlderRestated).
			dp := pr
			if dp == nil {
				prs, err := t.peerRels([]*Relation{c.Rel})
				if err != nil {
					return err
				}
				dp = prs[0]
			}
			if pr := dp; pr != nil {
				ins.New = slices.Clone(c.New)
				for k := range ins.New {
					if k >= len(c.Rel.Columns) {
						break
					}
					if _, ok := pr.cols[c.Rel.Columns[k].Name]; !ok {
						ins.New[k].Kind = ValueUnchanged
					}
				}
			}
		}
		sql, params, err := changeSQL(ins, pr)
		if err != nil {
			return fmt.Errorf("apply %s: %s: %w", t.gid, changeWhat(i, c.Kind, c.Rel), err)
		}
		from := len(t.steps)
		t.preparedFor("", sql, relKey(c.Rel), params)
		named(from)
		if c.Kind == ChangeInsert && c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl" {
			// DDL sent through the shim: run the statement where its row stands (DESIGN §5.2).
			if stmt, ok := ddlStmt(c); ok {
				if r, ok := t.restated[ddlRowID(c, c.New)]; ok {
					stmt = r
				}
				// Under the settings its session had on the local database (the row's columns
				// of ddlSettings), so that unqualified names mean the same schemas and literals
				// the same values; the statements after it run under the apply session's own.
				var set []string
				for _, name := range ddlSettings {
					if v, ok := ddlColumn(c, name); ok {
						sql := "SELECT pg_catalog.set_config($1, $2, true)"
						if name == "role" {
							// A role the peer lacks (made there by hand, not through the shim),
							// or one the apply session's user (not a superuser) may not take: the
							// statement runs as that user, as before roles were recorded, rather
							// than be refused.
							sql += " WHERE EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $2 AND pg_catalog.pg_has_role(oid, 'MEMBER'))"
						}
						params := [][]byte{[]byte(name), []byte(v)}
						if name == "default_text_search_config" {
							// One the peer lacks (made on the local database alone) cannot be set
							// there: the statement runs under the apply session's, rather than be
							// refused whatever it does. It is looked for by the name PostgreSQL reads
							// in the value: a SET's is written qualified, with the session's
							// quote_all_identifiers ("pg_catalog"."simple" where it was on:
							// TestFidelityTextSearchConfigQuoted), one of the server's configuration
							// as written there, unqualified too (TestFidelityTextSearchConfigServerDefault).
							schema, cfg, ok := splitQualifiedName(v)
							if !ok {
								continue
							}
							sql += " WHERE EXISTS (SELECT FROM pg_catalog.pg_ts_config c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.cfgnamespace" +
								" WHERE c.cfgname OPERATOR(pg_catalog.=) $4::pg_catalog.name AND CASE WHEN $3::pg_catalog.text OPERATOR(pg_catalog.=) ''" +
								" THEN pg_catalog.pg_ts_config_is_visible(c.oid) ELSE n.nspname OPERATOR(pg_catalog.=) $3::pg_catalog.name END)"
							params = append(params, []byte(schema), []byte(cfg))
						}
						if name == "default_tablespace" {
							// Likewise a tablespace the peer lacks (each site makes its own).
							sql += " WHERE $2 OPERATOR(pg_catalog.=) '' OR EXISTS (SELECT FROM pg_catalog.pg_tablespace WHERE spcname OPERATOR(pg_catalog.=) $2)"
						}
						t.prepared("setting of the DDL", sql, params)
						set = append(set, name)
					}
				}
				// Under row-level security as the local session ran it (row_security's default,
				// on: a session with it off that a policy applies to could not have run it
				// there), not the apply's own row_security = off (allRows): a statement that
				// reads a table whose policy applies to the DDL's role (CREATE MATERIALIZED VIEW,
				// REFRESH under SET ROLE) was refused ("query would be affected by row-level
				// security policy"), every dual commit with it (TestApplyDDLRoleRowSecurity).
				// Only under the role its session had (taken above): one that ran as itself runs
				// as the peer DSN's user, which need not be the local session's, and a policy
				// that applies to that user alone silently left rows out of what it computed —
				// refused instead, as the apply's own row changes are
				// (TestApplyDDLRowSecurityPeerUser).
				t.query("setting of the DDL", "SELECT pg_catalog.set_config('row_security', 'on', true) WHERE pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none'")
				set = append(set, "row_security")
				fills := mayFillTables.MatchString(stmt)
				if fills {
					t.query("tables before the DDL", tablesBeforeSQL)
				}
				t.query(fmt.Sprintf("DDL of change %d: %.60s", i+1, stmt), stmt)
				if fills {
					t.query("rows the DDL made on the peer", emptyNewTablesSQL)
				}
				for _, name := range set {
					t.query("setting after the DDL", "RESET "+name)
				}
				// What was learned of the tables may no longer hold: learn it again, after the DDL,
				// here and on the pool's other connections.
				clear(t.a.rels)
				if t.a.ddl != nil {
					t.a.relsAt = t.a.ddl.Add(1)
				}
			}
		}
	}
	t.inBatch++
	if t.batchSize += changeSize(c); t.inBatch < applyBatch && t.batchSize < applyBatchBytes {
		return nil
	}
	if err := t.roundTrip(); err != nil {
		return err
	}
	if t.refused != nil {
		return errApplyStop
	}
	t.trimStmts()
	return nil
}

// flushRun ends the run of inserts: the COPY it streams into, or, shorter than copyMin, its
// inserts one by one.
func (t *applyTx) flushRun() error {
	if t.cp != nil {
		return t.endCopy()
	}
	defer func() { t.run = t.run[:0] }()
	for k, c := range t.run {
		if err := t.send(t.runFirst+k, c); err != nil {
			return err
		}
	}
	return nil
}

// errAlreadyApplied: apply found the transaction's decision row on the peer, so the peer
// committed it before; nothing was changed.
var errAlreadyApplied = errors.New("already applied on the peer (its decision row exists)")

// peerRel is what an apply connection learned of a published table from the peer's catalog:
// what the statements for its changes need beyond the relation message.
type peerRel struct {
	partitioned bool // a partitioned table: TRUNCATE ONLY refuses it
	cols        map[string]peerCol
}

// peerCol is one column of a peerRel.
type peerCol struct {
	// fixed: a GENERATED ALWAYS identity column. PostgreSQL lets an UPDATE set it only to
	// DEFAULT (the peer's own sequence), so a row whose value of it changes is moved instead
	// (updateSQL).
	fixed bool
	typ   string // the type, without its modifier, as a cast names it
	// eq: the type has a default btree or hash operator class, whose equality PostgreSQL's own
	// apply finds REPLICA IDENTITY FULL rows by (matchRow). An "=" operator alone is not
	// enough: box's compares areas.
	eq bool
	// domain: the column's type, as a cast names it, when it is a domain or an array of one
	// ("" otherwise; typ is then the base type, or its array): a
	// value written into it is checked against the domain's constraints, which a value the row
	// holds need not meet (one added NOT VALID), so one the update leaves as it is must not be
	// written again (kept).
	domain string
	// keyColl: the collation, qualified and quoted, of the column in the index PostgreSQL
	// takes for the table's replica identity, where it is not the column's own (""
	// otherwise). A key is compared under it (matchRow): the index tells rows apart by it, and
	// under the column's, nondeterministic, 'abc' and 'ABC' — two rows of a REPLICA IDENTITY
	// USING INDEX table whose index is COLLATE "C" — were one, an update of either matching
	// both on the peer (TestApplyKeyIndexCollation).
	keyColl string
	// inner: typ holds a domain within it (innerDomainSQL), whose constraints reading a value
	// in typ checks: domain is then the column's type, domain or not, and kept compares the
	// parameter's text with the peer's value's, not read in typ, and so does matchRow a
	// REPLICA IDENTITY FULL row's old value.
	inner bool
	// composite: typ is a composite type (the column's, or at the bottom of its domains),
	// whose "=" is record's: a key compared with a parameter left for "=" to type would be
	// read as an anonymous record, which PostgreSQL cannot do (matchRow).
	composite bool
	// notValid: a domain within the type at the bottom of the column's domains (a field of a
	// composite, an array's element, a range's subtype) has a constraint added NOT VALID,
	// which a value the table holds need not meet — the only way one can hold such a value:
	// PostgreSQL refuses a checked constraint on a domain that a composite, array or range
	// column holds. A key read in that type, or in typ, would be checked against it (matchRow).
	notValid bool
	// notNull: a domain within that type may refuse NULL (NOT NULL, or a CHECK such as
	// VALUE IS NOT NULL), which a field or an element of it can escape all the same (a scalar
	// subquery that finds no row is NULL of the domain, unchecked): a key holding such a NULL,
	// read in that type, would be refused (matchRow, mayHoldNull).
	notNull bool
	// pathText: a type within that type (or it) is written by its output function after the
	// session's search_path (regclass, regtype, …: qualified only where not visible), which
	// the apply session and the decoder's walsender (pg_catalog) need not share: its key's
	// text as the walsender sent it need not be the peer's spelling of it (matchRow, kept:
	// peerText).
	pathText bool
	// catalogText: the peer has tandem.catalog_text (schemaSQL), which spells a value as the
	// walsender does, whatever the apply session's search_path; a peer set up by an older
	// install lacks it (peerText).
	catalogText bool
	// oidName: typ is a reg* type (regclass, regproc, …), which has no "=" of its own: a key
	// compared with a parameter left for "=" to type is read as oid's, a number, where the
	// walsender sent a name (matchRow).
	oidName bool
}

// peerText is the SQL for the text of the peer's value id (of a column pc) to compare, byte for
// byte, with the text the walsender sent of it: as its output function writes it (format's
// %s), under the apply session's settings, which are the walsender's (textSettings) but for
// search_path. For a value with a reg* type inside (pathText), under the walsender's search_path
// (tandem.catalog_text): under the peer's, a regclass is "t" where the walsender sent
// "public.t", and the peer found no REPLICA IDENTITY FULL row (TestFullIdentityInnerDomainRegTypes)
// and wrote a value kept as it was again, refused for a constraint added NOT VALID
// (TestApplyKeptInnerDomainRegclass). Not by setting the apply session's search_path, by
// which the statement's own operators are found (citext's "=", a user type's).
func peerText(id string, pc peerCol) string {
	if pc.pathText && pc.catalogText {
		return "tandem.catalog_text(" + id + ")"
	}
	return "pg_catalog.format('%s', " + id + ")"
}

// relKey names a relation definition: its table and its published columns with their types on
// the local database. A change of them (DDL) is a new key, learned anew.
func relKey(r *Relation) string {
	if r.key != "" {
		return r.key
	}
	var b strings.Builder
	b.WriteString(r.QualifiedName())
	for _, c := range r.Columns {
		b.WriteByte(0)
		b.WriteString(c.Name)
		b.WriteByte(0)
		b.WriteString(strconv.FormatUint(uint64(c.TypeOID), 10))
	}
	return b.String()
}

// peerRelsSQL reads, for each table named in $1, what a peerRel holds. A domain column's type
// is its base type's (the one at the bottom of domains over domains: domainBaseSQL), an array
// of a domain's the array of that base type — or, when that base type is an array itself (an
// array of a domain over int[]), which has no array type, the array of the domain as it is,
// rather than no type at all (CAST to nothing, a syntax error in every update and delete of
// the table: TestApplyArrayOfDomainOverArray): a full
// row's old values are read in it (matchRow), as CAST to the domain would check the domain's
// constraints — which an old value need not meet (one added NOT VALID), and a DELETE of that
// row was refused (TestApplyDomainArrayNotValid). A domain's equality is
// its base type's too, a type's that of the type it casts to implicitly without a
// function (varchar: text's; not xml, whose cast to text is for assignment only, so "=" finds no
// operator); types whose default operator class is polymorphic (arrays, enums, ranges,
// composites) count as having none, which costs only an index for FULL rows.
var peerRelsSQL = `SELECT n.i, c.relkind = 'p', a.attname, a.attidentity = 'a', pg_catalog.format_type(b.oid, -1),
  EXISTS (SELECT FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_am m ON m.oid = o.opcmethod
    WHERE o.opcdefault AND m.amname IN ('btree', 'hash') AND (o.opcintype = b.oid
      OR EXISTS (SELECT FROM pg_catalog.pg_cast k WHERE k.castsource = b.oid AND k.casttarget = o.opcintype AND k.castmethod = 'b' AND k.castcontext = 'i'))),
  CASE WHEN ty.typtype = 'd' OR el.oid IS NOT NULL OR ` + innerDomainSQL + ` THEN pg_catalog.format_type(ty.oid, -1) ELSE '' END,
  (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
    FROM pg_catalog.pg_index x, ROWS FROM (pg_catalog.unnest(x.indkey::pg_catalog.int2[]), pg_catalog.unnest(x.indcollation::pg_catalog.oid[])) k(attnum, coll),
      pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
    WHERE x.indrelid = c.oid AND (x.indisreplident OR (c.relreplident = 'd' AND x.indisprimary))
      AND k.attnum = a.attnum AND co.oid = k.coll AND k.coll <> a.attcollation
    LIMIT 1),
  ` + innerDomainSQL + `, b.typtype = 'c', ` + innerNotValidSQL("bt") + `, ` + innerNotNullSQL("bt") + `, ` + innerPathTextSQL("bt") + `,
  pg_catalog.to_regprocedure('tandem.catalog_text(anyelement)') IS NOT NULL,
  b.typnamespace = 'pg_catalog'::pg_catalog.regnamespace AND b.typname IN ('regclass', 'regtype', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig', 'regdictionary', 'regcollation', 'regnamespace', 'regrole')
FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY n(name, i)
JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(n.name)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN ty.typtype = 'd' THEN ` + domainBaseSQL("ty") + ` ELSE ty.oid END
LEFT JOIN pg_catalog.pg_type el ON el.oid = bt.typelem AND bt.typcategory = 'A' AND el.typtype = 'd'
LEFT JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN el.oid IS NOT NULL
  THEN COALESCE(NULLIF((SELECT e.typarray FROM pg_catalog.pg_type e WHERE e.oid = ` + domainBaseSQL("el") + `), 0), bt.oid) ELSE bt.oid END`

// innerDomainSQL tells whether type b (peerRelsSQL's, the one a column is read in) holds a
// domain within it: a field of a composite, an array's element, a range's subtype, at any
// depth. Reading a value in b checks that domain's constraints (record_in reads each field in
// its type), which a value the row holds need not meet (one added NOT VALID): such a column is
// compared by its text (kept).
var innerDomainSQL = innerDomainsSQL("b") + `)`

// innerNotValidSQL tells whether type t (a pg_type row) holds a domain within it (as
// innerDomainSQL) with a constraint added NOT VALID.
func innerNotValidSQL(t string) string {
	return innerDomainsSQL(t) + ` AND EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.contypid = s.oid AND NOT k.convalidated))`
}

// innerNotNullSQL tells whether type t (a pg_type row) holds a domain within it (as
// innerDomainSQL) that may refuse NULL: a NOT NULL one, or one with a CHECK constraint
// (VALUE IS NOT NULL, say; which ones refuse it the catalog does not tell).
func innerNotNullSQL(t string) string {
	return innerDomainsSQL(t) + ` AND (s.typnotnull OR EXISTS (SELECT FROM pg_catalog.pg_constraint k WHERE k.contypid = s.oid AND k.contype = 'c')))`
}

// innerPathTextSQL tells whether type t (a pg_type row) holds within it (as innerDomainSQL), or
// is, a type whose output function writes names after the session's search_path: the reg*
// types but regnamespace and regrole.
func innerPathTextSQL(t string) string {
	return strings.TrimSuffix(innerDomainsSQL(t), `WHERE s.typtype = 'd'`) + `WHERE s.typnamespace = 'pg_catalog'::pg_catalog.regnamespace
    AND s.typname IN ('regclass', 'regtype', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regconfig', 'regdictionary', 'regcollation'))`
}

// innerDomainsSQL is innerDomainSQL and innerNotValidSQL of type t without their end: the
// domains within t are the rows s.
func innerDomainsSQL(t string) string {
	return `EXISTS (WITH RECURSIVE r(oid) AS (SELECT ` + t + `.oid
    UNION SELECT x.t FROM r JOIN pg_catalog.pg_type s ON s.oid = r.oid CROSS JOIN LATERAL (
      SELECT s.typelem WHERE s.typcategory = 'A' AND s.typelem <> 0
      UNION ALL SELECT s.typbasetype WHERE s.typtype = 'd'
      UNION ALL SELECT f.atttypid FROM pg_catalog.pg_attribute f WHERE s.typtype = 'c' AND f.attrelid = s.typrelid AND f.attnum > 0 AND NOT f.attisdropped
      UNION ALL SELECT g.rngsubtype FROM pg_catalog.pg_range g WHERE g.rngtypid = s.oid
      UNION ALL SELECT g.rngtypid FROM pg_catalog.pg_range g WHERE g.rngmultitypid = s.oid) x(t))
  SELECT FROM r JOIN pg_catalog.pg_type s ON s.oid = r.oid WHERE s.typtype = 'd'`
}

// domainBaseSQL is the type domain t (a pg_type row) is made of at the bottom: a domain over a
// domain is checked against the inner one's constraints too, so a value read in the inner one
// was refused for a constraint of it added NOT VALID (TestApplyNestedDomainNotValid). An array
// of a domain found there (a domain over pos[]) is read in the array of that domain's bottom
// type in turn (peerRelsSQL).
func domainBaseSQL(t string) string {
	return `(WITH RECURSIVE d(oid) AS (SELECT ` + t + `.typbasetype UNION ALL
    SELECT s.typbasetype FROM pg_catalog.pg_type s JOIN d ON s.oid = d.oid WHERE s.typtype = 'd')
  SELECT d.oid FROM d JOIN pg_catalog.pg_type s ON s.oid = d.oid WHERE s.typtype <> 'd')`
}

// peerRels returns what the peer's catalog says of rels (nil for a table the peer lacks). It
// asks once per connection and relation definition, inside the transaction under way — so
// after the DDL before it in the stream — ending the round trip under way first.
func (t *applyTx) peerRels(rels []*Relation) ([]*peerRel, error) {
	out := make([]*peerRel, len(rels))
	var names []string
	var ask []int // indexes into rels of those to ask about
	for i, r := range rels {
		if pr, ok := t.a.rels[relKey(r)]; ok {
			out[i] = pr
		} else {
			names = append(names, r.QualifiedName())
			ask = append(ask, i)
		}
	}
	if len(ask) == 0 {
		return out, nil
	}
	if err := t.roundTrip(); err != nil {
		return nil, err
	}
	if t.refused != nil {
		return nil, errApplyStop
	}
	if err := t.pl.Close(); err != nil {
		return nil, fmt.Errorf("apply %s: close pipeline: %w", t.gid, err)
	}
	rr := t.a.conn.ExecParams(t.ctx, peerRelsSQL, [][]byte{textArray(names)}, nil, nil, nil)
	for rr.NextRow() {
		v := rr.Values()
		k, err := strconv.Atoi(string(v[0]))
		if err != nil || k < 1 || k > len(ask) {
			continue
		}
		pr := out[ask[k-1]]
		if pr == nil {
			pr = &peerRel{partitioned: string(v[1]) == "t", cols: map[string]peerCol{}}
			out[ask[k-1]] = pr
		}
		if v[2] != nil {
			pr.cols[string(v[2])] = peerCol{fixed: string(v[3]) == "t", typ: string(v[4]), eq: string(v[5]) == "t", domain: string(v[6]), keyColl: string(v[7]), inner: string(v[8]) == "t", composite: string(v[9]) == "t", notValid: string(v[10]) == "t", notNull: string(v[11]) == "t", pathText: string(v[12]) == "t", catalogText: string(v[13]) == "t", oidName: string(v[14]) == "t"}
		}
	}
	_, err := rr.Close()
	t.pl = t.a.conn.StartPipeline(t.ctx)
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		// The peer's transaction is aborted: a refusal like any other.
		t.refused = fmt.Errorf("apply %s on the peer: look up %s: %w", t.gid, strings.Join(names, ", "), err)
		return nil, errApplyStop
	case err != nil:
		return nil, fmt.Errorf("apply %s: look up %s on the peer: %w", t.gid, strings.Join(names, ", "), err)
	}
	for _, i := range ask {
		if out[i] != nil {
			t.a.rels[relKey(rels[i])] = out[i]
		}
	}
	return out, nil
}

// textArray is names as a text[] literal.
func textArray(names []string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return []byte(b.String())
}

// forgetPending drops the statements this pipeline tried to prepare: after a failure their
// Parse may have been skipped; a later apply prepares them again under new names.
func (a *applyConn) forgetPending(steps []pipelineStep) {
	for _, s := range steps {
		if s.prepareSQL != (applyStmt{}) {
			delete(a.stmts, s.prepareSQL)
		}
	}
}

// stepError is the refusal of step i of steps, of an apply for gid: named after the
// transaction the step was queued for, when known.
func stepError(gid string, steps []pipelineStep, i int, err error) error {
	what := "a statement"
	if i < len(steps) {
		what = steps[i].describe()
		gid = cmp.Or(steps[i].gid, gid)
	}
	return fmt.Errorf("apply %s on the peer: %s: %w", gid, what, err)
}

// changeSQL builds the statement and its text-format parameters for one row change. pr is what
// the peer's catalog says of the table (peerRels): needed by an UPDATE and a DELETE, nil for an
// INSERT.
func changeSQL(c Change, pr *peerRel) (string, [][]byte, error) {
	r := c.Rel
	if len(c.New) > len(r.Columns) || len(c.Old) > len(r.Columns) {
		return "", nil, fmt.Errorf("tuple has more values than %s has columns", r.QualifiedName())
	}
	var p sqlParams
	switch c.Kind {
	case ChangeInsert:
		// OVERRIDING SYSTEM VALUE keeps the source's values of GENERATED ALWAYS identity
		// columns; generated columns are not published, so the peer computes them.
		var cols, vals []string
		for i, v := range c.New {
			if v.Kind == ValueUnchanged {
				continue
			}
			cols = append(cols, sqlIdent(r.Columns[i].Name))
			vals = append(vals, p.add(v))
		}
		if len(cols) == 0 {
			// A row of no published column (a table of no column, or of generated ones
			// only): "()" is no column list in PostgreSQL's grammar.
			return fmt.Sprintf("INSERT INTO %s DEFAULT VALUES", r.QualifiedName()), p, nil
		}
		return fmt.Sprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE VALUES (%s)", r.QualifiedName(), strings.Join(cols, ", "), strings.Join(vals, ", ")), p, nil
	case ChangeUpdate:
		return updateSQL(c, pr)
	case ChangeDelete:
		where, err := matchRow(r, c.Old, c.OldFull, pr, p.add)
		if err != nil {
			return "", nil, err
		}
		return fmt.Sprintf("WITH t AS (DELETE FROM %s WHERE %s RETURNING 1) SELECT tandem.expect_one(count(*), %s) FROM t",
			ownRows(r, pr), where, sqlLiteral("delete of "+r.QualifiedName())), p, nil
	}
	return "", nil, fmt.Errorf("unknown change kind %q", c.Kind)
}

// sqlParams collects a statement's text-format parameters.
type sqlParams [][]byte

// add appends v and returns its placeholder.
func (p *sqlParams) add(v Value) string {
	if v.Kind == ValueNull {
		*p = append(*p, nil)
	} else {
		*p = append(*p, v.Data)
	}
	return "$" + strconv.Itoa(len(*p))
}

// updateSQL builds an UPDATE's statement, which must hit exactly one row (DESIGN §5.2): the row
// its old key (or old row) finds, or, when the key stayed as it was (Old nil), its key in New.
//
// A GENERATED ALWAYS identity column may be updated only to DEFAULT, which on the peer would
// draw from the peer's own sequence. Where such a column's value changes (SET id = DEFAULT on
// the local database), the row is moved instead: deleted and inserted again with OVERRIDING
// SYSTEM VALUE. Where its old value was not sent (a column outside the replica identity), the
// statement does either, after whether the peer's row holds the new value already.
func updateSQL(c Change, pr *peerRel) (string, [][]byte, error) {
	r := c.Rel
	moved, unsure := identityMoves(c, pr)
	var p sqlParams
	old := c.Old
	if old == nil {
		old = c.New
	}
	where, err := matchRow(r, old, c.OldFull, pr, p.add)
	if err != nil {
		return "", nil, err
	}
	name, what := ownRows(r, pr), sqlLiteral("update of "+r.QualifiedName())
	switch {
	case moved:
		return fmt.Sprintf("WITH d AS (DELETE FROM %s WHERE %s RETURNING *), i AS (%s) SELECT tandem.expect_one(count(*), %s) FROM i",
			name, where, reinsert(c, pr, &p), what), p, nil
	case len(unsure) > 0:
		var same []string
		for _, i := range unsure {
			same = append(same, sqlIdent(r.Columns[i].Name)+" IS NOT DISTINCT FROM "+p.add(c.New[i]))
		}
		kept := strings.Join(same, " AND ")
		return fmt.Sprintf("WITH u AS (%s), d AS (DELETE FROM %s WHERE %s AND NOT (%s) RETURNING *), i AS (%s) "+
			"SELECT tandem.expect_one((SELECT count(*) FROM u) + (SELECT count(*) FROM i), %s)",
			rowUpdate(c, pr, where+" AND "+kept, &p), name, where, kept, reinsert(c, pr, &p), what), p, nil
	}
	return fmt.Sprintf("WITH t AS (%s) SELECT tandem.expect_one(count(*), %s) FROM t", rowUpdate(c, pr, where, &p), what), p, nil
}

// identityMoves tells how update c meets the GENERATED ALWAYS identity columns of pr: moved, one
// of them changed value (the row is moved on the peer); unsure, those whose old value was not
// sent (the row is moved when the peer's differs).
func identityMoves(c Change, pr *peerRel) (moved bool, unsure []int) {
	for i, v := range c.New {
		col := c.Rel.Columns[i]
		switch {
		case !pr.col(col.Name).fixed, v.Kind == ValueUnchanged, c.Old == nil && col.Key:
		case c.Old != nil && i < len(c.Old) && (c.OldFull || col.Key):
			moved = moved || !sameValue(c.Old[i], v)
		default:
			unsure = append(unsure, i)
		}
	}
	return moved, unsure
}

// rowUpdate updates the row where finds, returning 1 for it, with the values of c the peer's row
// lacks: with the whole old row sent, only the columns whose value changed — setting one to the
// value it has would check a domain's constraints against it, which an old value need not meet
// (a constraint added NOT VALID), and the local UPDATE, which did not set it, did not. An update that sets none of them — every column a key that stayed as it was, an
// unchanged TOASTed value or an identity column — sets a column to itself, or, with none but
// identity columns published, locks the row: either way the row must be there.
func rowUpdate(c Change, pr *peerRel, where string, p *sqlParams) string {
	var sets []string
	self := ""
	for i, v := range c.New {
		col := c.Rel.Columns[i]
		if pr.col(col.Name).fixed {
			continue
		}
		if self == "" {
			self = sqlIdent(col.Name)
		}
		if v.Kind == ValueUnchanged || (c.Old == nil && col.Key) || (c.OldFull && i < len(c.Old) && sameValue(c.Old[i], v)) {
			continue // the peer's row has it already
		}
		id := sqlIdent(col.Name)
		if c.OldFull {
			sets = append(sets, id+" = "+p.add(v)) // changed: the local UPDATE wrote it too
		} else {
			sets = append(sets, id+" = "+kept(id, p.add(v), pr.col(col.Name)))
		}
	}
	name := ownRows(c.Rel, pr)
	switch {
	case len(sets) > 0:
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s RETURNING 1", name, strings.Join(sets, ", "), where)
	case self != "":
		return fmt.Sprintf("UPDATE %s SET %s = %[2]s WHERE %s RETURNING 1", name, self, where)
	}
	return fmt.Sprintf("SELECT 1 FROM %s WHERE %s FOR NO KEY UPDATE", name, where)
}

// reinsert inserts the new row of c in place of the one the query's CTE d deleted, returning 1:
// OVERRIDING SYSTEM VALUE writes the identity columns' new values, an unchanged TOASTed value
// comes from the deleted row, and generated columns (not published) are computed anew.
func reinsert(c Change, pr *peerRel, p *sqlParams) string {
	var cols, vals []string
	for i, v := range c.New {
		id := sqlIdent(c.Rel.Columns[i].Name)
		cols = append(cols, id)
		if v.Kind == ValueUnchanged {
			vals = append(vals, "d."+id)
		} else {
			vals = append(vals, kept("d."+id, p.add(v), pr.col(c.Rel.Columns[i].Name)))
		}
	}
	return fmt.Sprintf("INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM d RETURNING 1",
		c.Rel.QualifiedName(), strings.Join(cols, ", "), strings.Join(vals, ", "))
}

// kept is what an update writes into a column of the peer's row, whose value there is cur, from
// parameter param, the column's new value when the old one is not known (an update by key):
// param itself — but for a column of a domain type, whose constraints PostgreSQL checks on
// every value written into it, cur where the value stays as it was. The local UPDATE that
// left the column alone did not check it, and a value the row holds need not meet them (a
// constraint added NOT VALID): written again, the peer refused an update the local database
// had taken (TestApplyKeyedDomainNotValid). The two are compared as the text the peer's
// session makes of both in the domain's base type by its output function (format's %s), byte
// for byte, NULL apart from any value (num_nulls, which counts a composite of NULL fields as a
// value); not as a CAST to text, which for bpchar drops trailing blanks: 'a' kept where the
// local update wrote 'a  ' (TestApplyKeyedDomainBpcharSpaces). Nor quoted as literals
// (format's %L), which takes twice a value's size, past PostgreSQL's 1 GB allocation limit
// for one over 512 MB (TestApplyKeyedDomainHugeValue). The parameter is read in the base
// type, as a value of the domain read as a parameter would be checked too.
func kept(cur, param string, pc peerCol) string {
	if pc.domain == "" {
		return param
	}
	if pc.inner {
		// A composite (or a domain over one, an array of one) with a field of a domain type:
		// read in typ, the value would be checked against that domain (record_in), so the
		// parameter's text, sent after the same settings as the peer's session spells in
		// (textSettings), is compared with the value's as it is (TestApplyCompositeDomainFieldNotValid).
		// Both sessions spell a timestamptz in UTC (textSettings): under the databases' own
		// zones an unchanged one was written again (TestApplyCompositeDomainFieldTimeZone).
		// Both NULL are the same too: the text is spelled by format as well (a NULL as ''),
		// where NULL = '' wrote a NULL again, cast to a domain that a constraint added NOT
		// VALID makes refuse it (TestApplyCompositeDomainNullKept).
		// A reg* value inside is spelled as the walsender spells it (peerText).
		v := fmt.Sprintf("CAST(%s AS text)", param)
		return fmt.Sprintf(`CASE WHEN pg_catalog.num_nulls(%s, %s) <> 1 AND %s COLLATE pg_catalog."C" = pg_catalog.format('%%s', %[2]s) THEN %[1]s ELSE CAST(%[2]s AS %[4]s) END`,
			cur, v, peerText(cur, pc), pc.domain)
	}
	v := fmt.Sprintf("CAST(%s AS %s)", param, pc.typ)
	return fmt.Sprintf(`CASE WHEN pg_catalog.num_nulls(%s, %s) <> 1 AND pg_catalog.format('%%s', %[1]s) COLLATE pg_catalog."C" = pg_catalog.format('%%s', %[2]s) THEN %[1]s ELSE CAST(%[2]s AS %[3]s) END`,
		cur, v, pc.domain)
}

func sameValue(a, b Value) bool { return a.Kind == b.Kind && bytes.Equal(a.Data, b.Data) }

// col is what pr knows of column name; the zero peerCol for a column (or a table) the peer lacks.
func (pr *peerRel) col(name string) peerCol {
	if pr == nil {
		return peerCol{}
	}
	return pr.cols[name]
}

// mayHoldNull tells whether v, a composite's, an array's or a range's value, may hold a NULL
// field or element: in the text its output function writes, an empty field of a composite, or
// the word NULL anywhere. It errs toward yes (a binary value, a quoted field that holds one of
// those); no is certain.
func mayHoldNull(v Value) bool {
	if v.Kind != ValueText {
		return true
	}
	for _, s := range []string{"(,", ",,", ",)", "()", "NULL"} {
		if bytes.Contains(v.Data, []byte(s)) {
			return true
		}
	}
	return false
}

// matchRow is the WHERE clause that finds the changed row: by its key columns, or, for a table
// with REPLICA IDENTITY FULL, by every old value, picking one of identical rows by table and ctid.
//
// A full row's values are compared in the column's type on the peer (pr) where the type has an
// equality (peerCol.eq), as PostgreSQL's own apply does, so that an index on the column may
// serve — not as text, which each session spells after its own settings (a timestamptz after
// its TimeZone). Other types (json, point, arrays) are compared as the text the peer's session
// makes both of the stored value and of the sent one read in the column's type: the same
// spelling rules on both sides, byte for byte (an array of a nondeterministically collated
// type would otherwise compare its text under that collation). Values that are equal under their type's equality but written
// differently (numeric 1.0 and 1.00, float8 0 and -0, interval '1 day' and '24:00:00', or
// 'abc' and 'ABC' under a nondeterministic collation) match each other: among rows otherwise
// identical, the one spelled as the sent row, byte for byte, is taken first — else the UPDATE
// rewrote the other row, and one spelling vanished from the peer.
func matchRow(r *Relation, old []Value, full bool, pr *peerRel, param func(Value) string) (string, error) {
	var conds, exact []string
	for i, v := range old {
		col := r.Columns[i]
		if v.Kind == ValueUnchanged || (!full && !col.Key) {
			continue
		}
		id := sqlIdent(col.Name)
		pc, known := peerCol{}, false
		if pr != nil {
			pc, known = pr.cols[col.Name]
		}
		switch {
		case !full && v.Kind == ValueNull:
			return "", fmt.Errorf("key column %s of %s is NULL", col.Name, r.QualifiedName())
		case v.Kind == ValueNull:
			conds = append(conds, id+" IS NULL")
		case !full && (!pc.pathText || pc.catalogText) && (pc.notValid || pc.notNull && mayHoldNull(v)):
			// Read in its type (a composite's: typ; an array's or a range's: the column's, as
			// "=" reads the parameter), the key would be checked against a domain within it (a
			// field of a domain type, an array of a domain, a range over one), whose constraint
			// added NOT VALID the row's value need not meet: the peer refused every update and
			// delete of such a row (TestApplyCompositeKeyDomainFieldNotValid,
			// TestApplyArrayKeyDomainNotValid). Compared by its text instead, as a REPLICA
			// IDENTITY FULL row's value of such a column is (pc.inner below): the key's index
			// is not used then, only while such a constraint is there. So too a key that may
			// hold a NULL field or element of a domain that refuses NULL (NOT NULL, or a
			// CHECK), which reading it in its type does as well (TestApplyKeyNotNullDomainNull):
			// only such a key, or every key of a table keyed by a composite with a field of a
			// NOT NULL domain would miss its index. Before keyColl: byte for byte, the key's
			// text names the row the index holds under any collation. A key with a reg* type
			// inside (pc.pathText) is spelled under the walsender's search_path (pg_catalog:
			// "public.t", where the peer's spells "t"; peerText), else the peer found no row
			// for an update the typed compare finds (TestApplyKeyTextCompareRegclass); on a
			// peer that lacks tandem.catalog_text (an older install) it is read in its type, as
			// before, refused only for a value that escapes its domain
			// (TestApplyKeyNotValidRegclass).
			conds = append(conds, fmt.Sprintf(`%s COLLATE pg_catalog."C" = CAST(%s AS text)`, peerText(id, pc), param(v)))
		case !full && pc.keyColl != "":
			conds = append(conds, id+" = "+param(v)+" COLLATE "+pc.keyColl)
		case !full && pc.composite:
			// A key of a composite type (or of a domain over one, read in that composite,
			// unchecked) is read in it: its "=" is record's, and a parameter left for "=" to
			// type was read as an anonymous record, which PostgreSQL refuses ("input of
			// anonymous composite types is not implemented"): every update and delete of a
			// table keyed by one failed on the peer (TestApplyCompositeKey). Only there: for
			// an array of a domain, typ (the array of the base type) has no "=" with the column.
			conds = append(conds, fmt.Sprintf("%s = CAST(%s AS %s)", id, param(v), pc.typ))
		case !full && pc.oidName:
			// So is a key of a reg* type (or a domain over one): its "=" is oid's, which a
			// parameter left for it to type is read in, and every update and delete of a table
			// keyed by one failed on the peer ("invalid input syntax for type oid: "public.t"",
			// TestApplyRegKey).
			conds = append(conds, fmt.Sprintf("%s = CAST(%s AS %s)", id, param(v), pc.typ))
		case !full, !known:
			// A key compared in its type (the parameter takes the column's); or a column the
			// peer lacks, on which the statement fails.
			conds = append(conds, id+" = "+param(v))
		case pc.inner:
			// A value with a domain inside (a composite with a field of a domain type, an
			// array of a domain over an array): read in typ, it would be checked against that
			// domain, which the row's old value need not meet (a constraint added NOT VALID),
			// and the peer refused to change or delete the row. Its text as the walsender
			// spelled it is compared with the stored value's as the apply session spells it,
			// under the same settings (TestFullIdentityInnerDomainNotValid), a reg* value
			// inside under the walsender's search_path (peerText).
			conds = append(conds, fmt.Sprintf(`%s COLLATE pg_catalog."C" = CAST(%s AS text)`, peerText(id, pc), param(v)))
		case pc.eq:
			p := param(v)
			conds = append(conds, fmt.Sprintf("%s = CAST(%s AS %s)", id, p, pc.typ))
			// Byte for byte: under a nondeterministic collation the column's text keeps it,
			// and 'abc' would be spelled as 'ABC' (TestFullIdentityNondeterministicCollation).
			// As the output function spells them (format's %s), not as CAST to text, which
			// drops a bpchar's trailing blanks: 'a' and 'a  ' were the same spelling, and the
			// peer could change the other row (TestFullIdentityBpcharSpaces). Not quoted (%L):
			// both are values, not NULL, and the quoting takes twice a value's size, past
			// PostgreSQL's 1 GB allocation limit for one over 512 MB (TestFullIdentityHugeValue).
			exact = append(exact, fmt.Sprintf(`pg_catalog.format('%%s', %s) COLLATE pg_catalog."C" = pg_catalog.format('%%s', CAST(%s AS %s))`, id, p, pc.typ))
		default:
			// Byte for byte too: an array's text keeps the column's collation, and under a
			// nondeterministic one '{abc}' would match '{ABC}'
			// (TestFullIdentityNondeterministicCollationArray). Both as the output function
			// spells them (format's %s), as the walsender spelled the value: not CAST to text,
			// which for xml is the text as stored, with an XML declaration xml's output drops,
			// and the peer found no row for an update of one that held one on both databases
			// (TestFullIdentityXMLDeclaration).
			conds = append(conds, fmt.Sprintf(`pg_catalog.format('%%s', %s) COLLATE pg_catalog."C" = pg_catalog.format('%%s', CAST(%s AS %s))`, id, param(v), pc.typ))
		}
	}
	if len(conds) == 0 && !full {
		return "", fmt.Errorf("%s has no replica identity to find the row by (give it a primary key or REPLICA IDENTITY FULL)", r.QualifiedName())
	}
	where := strings.Join(conds, " AND ")
	if len(conds) == 0 {
		// The full row of a table of no published column: any of its rows is that row.
		where = "true"
	}
	if full {
		// A ctid names a row within one table: a partitioned table's statement reaches its
		// partitions, where the same ctid names other rows. So the row is named by table too.
		//
		// Among identical rows, one that no other session holds is taken first (SKIP LOCKED):
		// two transactions that changed two identical rows on the local database lock two
		// rows there and are applied in parallel on the peer (DESIGN §5.2 "Order on the
		// peer"). Had the second taken the row the first holds, it would wait for it and then
		// find it deleted or changed once the first commits: no row, taken for divergence
		// (TestApplyFullDuplicatesConcurrent). Only when every such row is held does it take
		// one anyway and wait for it, as before (a session that bypassed Tandem, which the
		// watchdog ends). The branches of the UNION ALL run in their order, and the LIMIT
		// stops at the first row: the second runs only when the first finds none.
		order := ""
		if len(exact) > 0 {
			order = " ORDER BY (" + strings.Join(exact, " AND ") + ") DESC"
		}
		pick := fmt.Sprintf("SELECT tableoid, ctid FROM %s WHERE %s%s LIMIT 1", ownRows(r, pr), where, order)
		return fmt.Sprintf("(tableoid, ctid) = (SELECT * FROM (SELECT * FROM (%s FOR NO KEY UPDATE SKIP LOCKED) tandem_free UNION ALL (%[1]s)) tandem_row LIMIT 1)", pick), nil
	}
	return where, nil
}

// ownRows names the rows of r itself in an UPDATE, a DELETE or a FROM: pgoutput reports a change
// under the table that holds the row, so an inheritance parent's statement must not reach its
// children (ONLY), where a row of the same key or values may stand — but a partitioned table
// (reported instead of its partitions when published via its root) holds no rows itself, and
// ONLY would find none.
func ownRows(r *Relation, pr *peerRel) string {
	if pr != nil && pr.partitioned {
		return r.QualifiedName()
	}
	return "ONLY " + r.QualifiedName()
}

// truncateSQL empties the tables a TRUNCATE lists: pgoutput lists exactly those it emptied on
// the local database (an inheritance parent's children only when it reached them), so each
// goes with ONLY — but for a partitioned table (listed instead of its partitions when
// published via its root), which TRUNCATE ONLY refuses and TRUNCATE empties through its
// partitions, as on the local database. prs are the tables as the peer knows them (peerRels).
// RESTART IDENTITY is the local TRUNCATE's option.
//
// CASCADE goes always, whatever the local TRUNCATE said. PostgreSQL refuses a TRUNCATE without
// it that leaves out a table referring to one it empties (by a foreign key), so the local one
// emptied every such table, listed or cascaded to — but pgoutput lists only the published ones.
// An UNLOGGED table may refer to a logged one: emptied on the local database, it is not listed,
// and the peer, given the rest alone, refused a TRUNCATE the local database had taken
// (0A000 "cannot truncate a table referenced in a foreign key constraint"). With CASCADE the
// peer empties the same tables: those listed and those referring to them, all of which the
// local one emptied too (TestTruncateUnloggedReferrer).
func truncateSQL(c Change, prs []*peerRel) string {
	names := make([]string, len(c.Truncated))
	for i, r := range c.Truncated {
		var pr *peerRel
		if i < len(prs) {
			pr = prs[i]
		}
		names[i] = ownRows(r, pr)
	}
	s := "TRUNCATE " + strings.Join(names, ", ")
	if c.TruncateOptions&2 != 0 {
		s += " RESTART IDENTITY"
	}
	return s + " CASCADE"
}

// A table DDL makes with rows (CREATE TABLE … AS, SELECT … INTO) gets those rows on the local
// database from its data there, and they reach the peer as row changes after the statement's
// tandem.ddl row, as every row does: so the tables the statement makes on the peer are emptied
// of the rows it selected there (which would double them, or differ: random(), now()). Those
// are the published tables (plain, logged; the peer's publication lists the same schemas as
// the local one) that did not exist before it. mayFillTables picks the
// statements that may be such DDL; picking others costs only the two look-ups.
var mayFillTables = regexp.MustCompile(`(?is)\b(create\b.*\btable\b.*\bas|select\b.*\binto)\b`)

const (
	tablesBeforeSQL = `SELECT pg_catalog.set_config('tandem.tables_before',
  (SELECT coalesce(pg_catalog.array_agg(oid), '{}')::pg_catalog.text FROM pg_catalog.pg_class WHERE relkind = 'r'), true)`
	emptyNewTablesSQL = `DO $tandem$
DECLARE r pg_catalog.regclass;
BEGIN
  FOR r IN SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relpersistence = 'p'
      AND c.oid OPERATOR(pg_catalog.<>) ALL (pg_catalog.current_setting('tandem.tables_before')::pg_catalog.oid[])
      AND EXISTS (SELECT FROM pg_catalog.pg_publication_tables t WHERE t.pubname = '` + PublicationName + `'
        AND t.schemaname = n.nspname AND t.tablename = c.relname) LOOP
    EXECUTE pg_catalog.format('TRUNCATE ONLY %s', r);
  END LOOP;
END $tandem$`
)

// ddlSettings are the session settings a tandem.ddl row records (schemaSQL), each in the
// column of its name: those that decide what a DDL statement's names and literals mean, and
// how ALTER COLUMN … TYPE without USING turns values into text (an interval to text under
// IntervalStyle: the peer's apply session has its own pinned, textSettings), array_nulls,
// by which an array literal's NULL is read (a DEFAULT '{NULL}'), transform_null_equals, by
// which x = NULL is parsed as x IS NULL (in a generated column's expression, which each
// database computes for itself), timezone_abbreviations, by which a date and time literal's
// zone abbreviation is read (IST: Israel's or India's), and check_function_bodies: off (as
// pg_dump's output and migration tools set it), a function may be made before the tables its
// body reads, which the peer refused under the apply session's default
// (TestFidelityCheckFunctionBodies); password_encryption, after which CREATE ROLE and ALTER
// ROLE … PASSWORD hash a password: a session's md5 (for clients that cannot do SCRAM) gave
// the peer a SCRAM hash (TestFidelityPasswordEncryption); xmlbinary, by which xmlelement
// writes a bytea (in a column's default, a conversion's USING: TestFidelityXMLBinary);
// default_text_search_config, by which to_tsvector and to_tsquery without a configuration read
// a text (in a CHECK constraint the rows there are validated against: the peer refused one the
// local database's rows met, TestFidelityTextSearchConfig); default_tablespace, where CREATE
// TABLE and CREATE INDEX without a TABLESPACE clause put what they make
// (TestFidelityDefaultTablespace); plpgsql.extra_errors, by which CREATE FUNCTION refuses a
// PL/pgSQL body (a database's default that a session turned off for one function:
// TestFidelityPlpgsqlExtraErrors; a row records none where the session had not loaded
// PL/pgSQL nor set it); quote_all_identifiers, by which quote_ident (immutable to
// PostgreSQL) quotes a name (in a column's default, a conversion's USING:
// TestFidelityQuoteAllIdentifiers). And role, the one the client set (SET ROLE; a row records
// none when it set none): what the statement makes is that role's on the local database, and
// was the apply session's user's on the peer (TestApplyDDLRole).
var ddlSettings = []string{"search_path", "timezone", "datestyle", "intervalstyle", "extra_float_digits", "bytea_output", "lc_monetary", "xmloption", "array_nulls", "transform_null_equals", "timezone_abbreviations", "check_function_bodies", "password_encryption", "xmlbinary", "default_text_search_config", "default_tablespace", "plpgsql.extra_errors", "quote_all_identifiers", "role"}

// splitQualifiedName reads a setting's value naming an object, [schema.]name, as PostgreSQL
// does (stringToQualifiedNameList): parts separated by dots, blanks around them, each unquoted
// (ASCII letters folded to lower case) or "quoted"; schema is "" where unqualified, ok false
// where PostgreSQL reads no such name.
func splitQualifiedName(v string) (schema, name string, ok bool) {
	var parts []string
	i := 0
	for {
		for i < len(v) && isSpace(v[i]) {
			i++
		}
		start := i
		if i < len(v) && v[i] == '"' {
			// To its closing quote; "" within is a quote. Unclosed, or empty, is no name.
			for i++; ; i++ {
				if i >= len(v) {
					return "", "", false
				}
				if v[i] == '"' {
					if i+1 < len(v) && v[i+1] == '"' {
						i++
						continue
					}
					break
				}
			}
			if i++; i-start < 3 {
				return "", "", false
			}
		} else {
			for i < len(v) && v[i] != '.' && v[i] != '"' && !isSpace(v[i]) {
				i++
			}
			if i == start {
				return "", "", false
			}
		}
		parts = append(parts, string(foldName(v[start:i], nil)))
		for i < len(v) && isSpace(v[i]) {
			i++
		}
		if i == len(v) {
			break
		}
		if v[i] != '.' {
			return "", "", false
		}
		i++
	}
	switch len(parts) {
	case 1:
		return "", parts[0], true
	case 2:
		return parts[0], parts[1], true
	}
	return "", "", false
}

// ddlStmt is the statement text of an inserted tandem.ddl row.
func ddlStmt(c Change) (string, bool) { return ddlColumn(c, "stmt") }

// ddlColumn is the value of column name of an inserted tandem.ddl row; false when the row has
// none (a column that tandem.ddl of an earlier version lacks).
func ddlColumn(c Change, name string) (string, bool) {
	for i, col := range c.Rel.Columns {
		if col.Name == name && i < len(c.New) && c.New[i].Kind == ValueText {
			return string(c.New[i].Data), true
		}
	}
	return "", false
}

// isDefinite tells whether err is the peer's refusal (an SQL error that rolled the
// transaction back) rather than an unknown outcome (connection lost, timeout, shutdown).
func isDefinite(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch {
	case strings.HasPrefix(pgErr.Code, "08"), // connection exception
		strings.HasPrefix(pgErr.Code, "57P"), // shutting down, cannot connect now
		strings.HasPrefix(pgErr.Code, "53"),  // out of resources
		pgErr.Code == "55006" && raisedBy(pgErr, "replorigin_session_setup", "replication origin"): // origin still held by a dying session
		return false
	}
	return true
}

// raisedBy tells whether the server raised pgErr in its function routine. The routine is sent
// as it is, where the message is written in the language of the session's lc_messages (a
// server's default from its environment at initdb, which a non-superuser cannot change): on a
// peer set up in German an origin still held read "Replication-Origin mit ID … ist bereits
// aktiv", and a busy prepared transaction "… ist beschäftigt", neither of which the English
// words matched — taken for refusals that mean the databases differ, the peer was marked as
// needing resync (TestTransientTranslatedMessages). An error without a routine (a server that
// sends none) is still told by the English text, english.
func raisedBy(pgErr *pgconn.PgError, routine, english string) bool {
	if pgErr.Routine != "" {
		return pgErr.Routine == routine
	}
	return strings.Contains(pgErr.Message, english)
}

// transient tells whether err, a refusal of the peer (isDefinite), is one a retry may not
// meet: the peer turned the transaction down for the moment — a conflict with another
// session, a lock it did not get in time, a cancel, a timeout — not for the rows it holds,
// and kept nothing of it. Such a transaction is sent again; only the other refusals mean the
// databases differ (DESIGN §5.5: the peer needs resync): an UPDATE or DELETE that found no row
// (TDM02), a unique or other constraint violation (class 23, and 40002 at commit), a missing
// table or column (42P01, 42703). Out of resources (53) and shutting down (57P) are not
// refusals at all (isDefinite).
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch code := pgErr.Code; {
	case strings.HasPrefix(code, "40"):
		// Transaction rollback: serialization failure (40001), deadlock (40P01), statement
		// completion unknown (40003); not a constraint violated at commit (40002).
		return code != "40002"
	case code == "57014", // query_canceled: pg_cancel_backend, a statement_timeout
		code == "55P03", // lock_not_available: a lock_timeout, NOWAIT
		code == "25P03", // idle_in_transaction_session_timeout
		code == "25P04": // transaction_timeout (PostgreSQL 17)
		return true
	case code == "55000" && raisedBy(pgErr, "LockGXact", "is busy"):
		// "prepared transaction with identifier … is busy": another session (the resolver) is
		// committing or rolling it back on the peer; asked again, the decision row tells.
		return true
	}
	return false
}
