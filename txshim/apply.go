package txshim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	stmts      map[string]string // SQL text → prepared statement name on this connection
	next       int               // names are never reused, even of statements whose Parse failed
	// fixed holds, per relation, the columns an UPDATE may not set (GENERATED ALWAYS AS
	// IDENTITY): their values never change, and PostgreSQL refuses to set them.
	fixed  map[string]map[string]bool
	copied *atomic.Int64 // counts the rows it applied through COPY; may be nil
	// noLSN: the peer's tandem.decisions has no lsn column (installed by an earlier version
	// and not since): decision rows go without it, and are never pruned (prune.go).
	noLSN bool
}

// originName is the replication origin of apply connection idx for changes from source.
func originName(source string, idx int) string {
	if idx == 0 {
		return "tandem_" + source
	}
	return "tandem_" + source + "#" + strconv.Itoa(idx)
}

func dialApply(ctx context.Context, dsn, source, origin string, logger *slog.Logger) (*applyConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse peer DSN: %w", err)
	}
	// The name tells the watchdog (terminateBlockers) that a session is an apply, never a blocker.
	cfg.RuntimeParams["application_name"] = applyAppName
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the peer database: %w", err)
	}
	lit := sqlLiteral(origin)
	setup := `SET session_replication_role = replica;
SELECT pg_replication_origin_create(` + lit + `) WHERE NOT EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = ` + lit + `);
SELECT pg_replication_origin_session_setup(` + lit + `);
SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('tandem.decisions') AND attname = 'lsn' AND NOT attisdropped)`
	res, err := conn.Exec(ctx, setup).ReadAll()
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("set up apply session with replication origin %s on the peer: %w", origin, err)
	}
	a := &applyConn{dsn: dsn, source: source, logger: logger, conn: conn, stmts: map[string]string{}, fixed: map[string]map[string]bool{}}
	if last := res[len(res)-1]; len(last.Rows) == 1 && string(last.Rows[0][0]) == "f" {
		a.noLSN = true
	}
	return a, nil
}

// decisionRow adds the decision row of the transaction ending at end in the source's stream.
func (t *applyTx) decisionRow(end pglogrepl.LSN) {
	if t.a.noLSN {
		t.prepared("decision row", "INSERT INTO tandem.decisions (gid) VALUES ($1)", [][]byte{[]byte(t.gid)})
		return
	}
	t.prepared("decision row", "INSERT INTO tandem.decisions (gid, lsn) VALUES ($1, $2)", [][]byte{[]byte(t.gid), []byte(end.String())})
}

// applyAppName is the application_name of apply sessions.
const applyAppName = "tandem apply"

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
	mu.Lock()
	t = time.AfterFunc(blockerGrace, func() {
		mu.Lock()
		defer mu.Unlock()
		if wctx.Err() != nil {
			return
		}
		prepared, err := terminateBlockers(wctx, a.dsn, pid, gid, a.logger)
		if err != nil && wctx.Err() == nil {
			hint := ""
			if sqlState(err) == "42501" {
				hint = "the peer DSN's user may only end its own role's sessions: GRANT pg_signal_backend to it"
			}
			a.logger.Warn("apply watchdog: cannot end the sessions blocking the apply", "gid", gid, "err", err, "hint", hint)
		}
		if prepared && a.onPrepared != nil {
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
// finishing. Other apply sessions and prepared transactions (pid 0: the resolver's) are spared;
// prepared reports whether one of the latter blocks the apply.
func terminateBlockers(ctx context.Context, dsn string, pid uint32, gid string, logger *slog.Logger) (prepared bool, err error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return false, err
	}
	cfg.RuntimeParams["application_name"] = "tandem apply watchdog"
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.WithoutCancel(cctx))
	pidArg := []byte(strconv.FormatUint(uint64(pid), 10))
	res := conn.ExecParams(cctx, `SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''),
	coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''), pg_terminate_backend(a.pid)
FROM pg_stat_activity a
WHERE a.pid = ANY (pg_blocking_pids($1::int)) AND a.application_name <> $2`,
		[][]byte{pidArg, []byte(applyAppName)}, nil, nil, nil).Read()
	if res.Err != nil {
		return false, res.Err
	}
	for _, row := range res.Rows {
		logger.Warn("apply watchdog: terminated a session that blocked the apply on the peer database (only Tandem writes to the backup's database)",
			"gid", gid, "pid", string(row[0]), "user", string(row[1]), "application", string(row[2]),
			"client", string(row[3]), "state", string(row[4]), "terminated", string(row[5]) == "t")
	}
	// pg_blocking_pids names a prepared transaction as pid 0.
	res = conn.ExecParams(cctx, `SELECT 0 = ANY (pg_blocking_pids($1::int))`, [][]byte{pidArg}, nil, nil, nil).Read()
	if res.Err != nil {
		return false, res.Err
	}
	return len(res.Rows) == 1 && string(res.Rows[0][0]) == "t", nil
}

func (a *applyConn) close(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	a.conn.Close(cctx)
}

// applyPool holds up to size apply connections to the peer, made on demand.
type applyPool struct {
	dsn        string
	source     string
	logger     *slog.Logger
	onPrepared func()
	copied     *atomic.Int64 // given to its connections (applyConn.copied)
	slots      chan *applySlot
	noLSN      sync.Once // says once that the peer's decision rows go without their lsn
}

type applySlot struct {
	idx int
	c   *applyConn // nil until first use or after the connection broke
}

// newApplyPool makes a pool whose connections use the replication origins of indexes first,
// first+1, … (originName).
func newApplyPool(peerDSN, source string, first, size int, logger *slog.Logger, onPrepared func()) *applyPool {
	p := &applyPool{dsn: peerDSN, source: source, logger: logger, onPrepared: onPrepared, slots: make(chan *applySlot, size)}
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
	if s.c == nil {
		c, err := dialApply(ctx, p.dsn, p.source, originName(p.source, s.idx), p.logger)
		if err != nil {
			p.slots <- s
			return nil, err
		}
		c.onPrepared, c.copied = p.onPrepared, p.copied
		if c.noLSN {
			p.noLSN.Do(func() {
				p.logger.Warn("the peer's tandem.decisions has no lsn column (installed by an earlier version): its decision rows are never pruned; run tandem install")
			})
		}
		s.c = c
	}
	return s, nil
}

// put returns a slot; a connection whose state is unknown (broken) is closed and redialled
// by the next get.
func (p *applyPool) put(ctx context.Context, s *applySlot, broken bool) {
	if broken && s.c != nil {
		s.c.close(ctx)
		s.c = nil
	}
	p.slots <- s
}

// closeIdle closes the connections nobody holds, so that the next get dials afresh: after a
// peer outage the pooled connections are dead.
func (p *applyPool) closeIdle(ctx context.Context) {
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
	for _, s := range idle {
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

// pipelineStep is one request queued in an apply pipeline, remembered to read its result.
type pipelineStep struct {
	prepareSQL string // non-empty: a Parse of this SQL under name (cached on success)
	name       string
	what       string // for errors: which change this was
}

// applyBatch is how many row changes an apply sends before it reads their results: a large
// transaction goes to the peer in several round trips, with bounded memory on both ends.
const applyBatch = 1000

// apply runs txn on the peer (DESIGN §5.3 step 2): BEGIN, the term check (§3 fencing; skipped
// when term is 0), the replication-origin position, every change, the decision row gid and
// PREPARE TRANSACTION gid (or, for endCommit, the decision row first and COMMIT last) — in one
// round trip, or, departing from DESIGN's "one round trip", one per applyBatch changes for a
// large transaction (and around each COPY of a run of inserts: applycopy.go), so that neither
// end buffers a whole bulk load. An error that is a *pgconn.PgError means the peer refused it
// and nothing of it stays there; errAlreadyApplied means the peer had committed it before
// (endCommit only); any other error leaves the connection and the outcome unknown.
func (a *applyConn) apply(ctx context.Context, txn *Txn, gid string, term uint64, end applyEnd) error {
	if err := a.learnFixed(ctx, txn); err != nil {
		return fmt.Errorf("apply %s: %w", gid, err)
	}
	t := &applyTx{a: a, ctx: ctx, gid: gid, pl: a.conn.StartPipeline(ctx), decisionStep: -1}
	stop := a.watch(ctx, gid)
	defer stop()

	t.query("begin", "BEGIN")
	if term > 0 {
		t.prepared("term check", "SELECT tandem.check_term($1, $2)", [][]byte{[]byte(strconv.FormatUint(term, 10)), []byte(a.source)})
	}
	// A transaction shipped from the stream (plain commits, catch-up) may be on the peer
	// already: shipped before a crash or a lost reply, and resent by the slot. Its decision row
	// goes first, so that a duplicate fails before any change runs (errAlreadyApplied).
	if end == endCommit {
		t.decisionRow(txn.EndLSN)
		t.decisionStep = len(t.steps) - 1 // its Execute, after a Parse the first time
	}
	t.prepared("replication origin", "SELECT pg_replication_origin_xact_setup($1, $2)", [][]byte{
		[]byte(txn.EndLSN.String()), []byte(txn.Time.UTC().Format("2006-01-02 15:04:05.999999Z07:00"))})
	err := txn.Each(t.change)
	if errors.Is(err, errCopyWrite) {
		err = t.endCopy() // why the COPY ended: a refusal (errApplyStop) or a lost connection
	}
	if err == nil {
		err = t.flushRun()
	}
	switch {
	case errors.Is(err, errApplyStop):
	case err != nil:
		// A change that cannot be turned into SQL, a spill file that cannot be read, or a lost
		// peer: the peer transaction is left open, and the connection must be closed.
		t.abortCopy(err)
		t.pl.Close()
		a.forgetPending(t.steps)
		return err
	default:
		if end == endPrepare {
			t.decisionRow(txn.EndLSN)
			t.query("prepare transaction", "PREPARE TRANSACTION "+sqlLiteral(gid))
		} else {
			t.query("commit", "COMMIT")
		}
		if err := t.roundTrip(); err != nil {
			return err
		}
	}
	if err := t.pl.Close(); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return fmt.Errorf("apply %s: close pipeline: %w", gid, err)
		}
	}
	if t.refused == nil {
		return nil
	}
	if a.conn.TxStatus() != 'I' {
		if _, err := a.conn.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			return fmt.Errorf("apply %s: roll back after %v: %w", gid, t.refused, err)
		}
	}
	if t.duplicate {
		return errAlreadyApplied
	}
	return t.refused
}

// applyTx is one apply under way: its pipeline, the requests of the round trip under way, the
// peer's first refusal, and a run of inserts waiting to go as one COPY.
type applyTx struct {
	a   *applyConn
	ctx context.Context
	gid string
	pl  *pgconn.Pipeline

	steps        []pipelineStep // those of the round trip under way
	inBatch      int            // changes sent in it
	decisionStep int            // the decision row's Execute in the first round trip, or -1
	refused      error          // the peer's first refusal; it skips the rest of the transaction
	duplicate    bool           // refused is the decision row's unique violation

	run      []Change    // consecutive copyable inserts into one table, not sent yet
	runFirst int         // the index of run[0] in the transaction
	cp       *copyStream // the COPY a long run is streaming into (applycopy.go)
}

// errApplyStop ends the walk over a transaction's changes once the peer refused one.
var errApplyStop = errors.New("the peer refused a change")

func (t *applyTx) query(what, sql string, params ...[]byte) {
	t.pl.SendQueryParams(sql, params, nil, nil, nil)
	t.steps = append(t.steps, pipelineStep{what: what})
}

// prepared queues sql under the connection's prepared statement for it, made (Parse) here
// the first time.
func (t *applyTx) prepared(what, sql string, params [][]byte) {
	a := t.a
	name, ok := a.stmts[sql]
	if !ok {
		name = "tandem_apply_" + strconv.Itoa(a.next)
		a.next++
		t.pl.SendPrepare(name, sql, nil)
		t.steps = append(t.steps, pipelineStep{prepareSQL: sql, name: name, what: what})
		a.stmts[sql] = name // optimistic, undone by forgetPending when the Parse did not succeed
	}
	t.pl.SendQueryPrepared(name, params, nil, nil)
	t.steps = append(t.steps, pipelineStep{what: what})
}

// fail keeps the first error of the apply; the peer skips what follows up to the Sync, and
// the Parse of statements after it may not have happened.
func (t *applyTx) fail(i int, err error) {
	if t.refused != nil {
		return
	}
	t.refused = stepError(t.gid, t.steps, i, err)
	var pgErr *pgconn.PgError
	t.duplicate = i == t.decisionStep && errors.As(err, &pgErr) && pgErr.Code == "23505"
	t.a.forgetPending(t.steps)
}

// roundTrip sends a Sync and reads the results of steps. A refusal is kept in refused (by
// fail); a lost connection is returned, with the pipeline closed.
func (t *applyTx) roundTrip() error {
	defer func() { t.steps, t.inBatch = t.steps[:0], 0 }()
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
		case *pgconn.StatementDescription:
			i++
		case *pgconn.ResultReader:
			if _, err := r.Close(); err != nil {
				t.fail(i, err)
			}
			i++
		}
	}
}

// change takes change i of the transaction: into the COPY a run of inserts streams into, into
// the run of inserts waiting to be long enough for one, or sent after that run.
func (t *applyTx) change(i int, c Change) error {
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

// send queues change i as its statement, and ends the round trip every applyBatch changes.
func (t *applyTx) send(i int, c Change) error {
	what := fmt.Sprintf("change %d (%c on %s)", i+1, c.Kind, c.Rel.QualifiedName())
	if c.Kind == ChangeTruncate {
		t.query(what, truncateSQL(c))
	} else {
		sql, params, err := changeSQL(c, t.a.fixed[c.Rel.QualifiedName()])
		if err != nil {
			return fmt.Errorf("apply %s: %s: %w", t.gid, what, err)
		}
		t.prepared(what, sql, params)
		if c.Kind == ChangeInsert && c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl" {
			// DDL sent through the shim: run the statement where its row stands (DESIGN §5.2).
			if stmt, ok := ddlStmt(c); ok {
				t.query(fmt.Sprintf("DDL of change %d: %.60s", i+1, stmt), stmt)
			}
		}
	}
	if t.inBatch++; t.inBatch < applyBatch {
		return nil
	}
	if err := t.roundTrip(); err != nil {
		return err
	}
	if t.refused != nil {
		return errApplyStop
	}
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

// learnFixed looks up, once per relation and connection, the GENERATED ALWAYS identity
// columns of the tables txn updates.
func (a *applyConn) learnFixed(ctx context.Context, txn *Txn) error {
	var rels []*Relation
	for _, c := range txn.Changes {
		if c.Kind == ChangeUpdate {
			rels = append(rels, c.Rel)
		}
	}
	if txn.spill != nil {
		rels = append(rels, txn.spill.upd...)
	}
	for _, r := range rels {
		name := r.QualifiedName()
		if _, ok := a.fixed[name]; ok {
			continue
		}
		rr := a.conn.ExecParams(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attidentity = 'a' AND NOT attisdropped`,
			[][]byte{[]byte(name)}, nil, nil, nil)
		cols := map[string]bool{}
		for rr.NextRow() {
			cols[string(rr.Values()[0])] = true
		}
		if _, err := rr.Close(); err != nil {
			return fmt.Errorf("look up identity columns of %s on the peer: %w", name, err)
		}
		a.fixed[name] = cols
	}
	return nil
}

// forgetPending drops the statements this pipeline tried to prepare: after a failure their
// Parse may have been skipped; a later apply prepares them again under new names.
func (a *applyConn) forgetPending(steps []pipelineStep) {
	for _, s := range steps {
		if s.prepareSQL != "" {
			delete(a.stmts, s.prepareSQL)
		}
	}
}

func stepError(gid string, steps []pipelineStep, i int, err error) error {
	what := "a statement"
	if i < len(steps) {
		what = steps[i].what
	}
	return fmt.Errorf("apply %s on the peer: %s: %w", gid, what, err)
}

// changeSQL builds the statement and its text-format parameters for one row change.
// fixed names the columns an UPDATE must leave out.
func changeSQL(c Change, fixed map[string]bool) (string, [][]byte, error) {
	r := c.Rel
	if len(c.New) > len(r.Columns) || len(c.Old) > len(r.Columns) {
		return "", nil, fmt.Errorf("tuple has more values than %s has columns", r.QualifiedName())
	}
	var b strings.Builder
	var params [][]byte
	param := func(v Value) string {
		if v.Kind == ValueNull {
			params = append(params, nil)
		} else {
			params = append(params, v.Data)
		}
		return "$" + strconv.Itoa(len(params))
	}
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
			vals = append(vals, param(v))
		}
		fmt.Fprintf(&b, "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE VALUES (%s)", r.QualifiedName(), strings.Join(cols, ", "), strings.Join(vals, ", "))
		return b.String(), params, nil
	case ChangeUpdate:
		var sets []string
		for i, v := range c.New {
			col := r.Columns[i]
			if v.Kind == ValueUnchanged || fixed[col.Name] || (c.Old == nil && col.Key) {
				// An unchanged TOASTed value, an identity column, or a key that stayed as it
				// was: the peer's row has it already.
				continue
			}
			sets = append(sets, sqlIdent(r.Columns[i].Name)+" = "+param(v))
		}
		if len(sets) == 0 {
			return "", nil, fmt.Errorf("update of %s sets no column", r.QualifiedName())
		}
		old := c.Old
		if old == nil {
			old = c.New
		}
		where, err := matchRow(r, old, c.OldFull, param)
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(&b, "WITH t AS (UPDATE %s SET %s WHERE %s RETURNING 1) SELECT tandem.expect_one(count(*), %s) FROM t",
			r.QualifiedName(), strings.Join(sets, ", "), where, sqlLiteral("update of "+r.QualifiedName()))
		return b.String(), params, nil
	case ChangeDelete:
		where, err := matchRow(r, c.Old, c.OldFull, param)
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(&b, "WITH t AS (DELETE FROM %s WHERE %s RETURNING 1) SELECT tandem.expect_one(count(*), %s) FROM t",
			r.QualifiedName(), where, sqlLiteral("delete of "+r.QualifiedName()))
		return b.String(), params, nil
	}
	return "", nil, fmt.Errorf("unknown change kind %q", c.Kind)
}

// matchRow is the WHERE clause that finds the changed row: by its key columns, or, for a
// table with REPLICA IDENTITY FULL, by every old value (text-compared, so types without an
// equality operator work too), picking one of identical duplicate rows by ctid.
func matchRow(r *Relation, old []Value, full bool, param func(Value) string) (string, error) {
	var conds []string
	for i, v := range old {
		col := r.Columns[i]
		if v.Kind == ValueUnchanged || (!full && !col.Key) {
			continue
		}
		if full {
			conds = append(conds, sqlIdent(col.Name)+"::text IS NOT DISTINCT FROM "+param(v)+"::text")
		} else if v.Kind == ValueNull {
			return "", fmt.Errorf("key column %s of %s is NULL", col.Name, r.QualifiedName())
		} else {
			conds = append(conds, sqlIdent(col.Name)+" = "+param(v))
		}
	}
	if len(conds) == 0 {
		return "", fmt.Errorf("%s has no replica identity to find the row by (give it a primary key or REPLICA IDENTITY FULL)", r.QualifiedName())
	}
	where := strings.Join(conds, " AND ")
	if full {
		return fmt.Sprintf("ctid = (SELECT ctid FROM %s WHERE %s LIMIT 1)", r.QualifiedName(), where), nil
	}
	return where, nil
}

func truncateSQL(c Change) string {
	names := make([]string, len(c.Truncated))
	for i, r := range c.Truncated {
		names[i] = r.QualifiedName()
	}
	s := "TRUNCATE " + strings.Join(names, ", ")
	if c.TruncateOptions&2 != 0 {
		s += " RESTART IDENTITY"
	}
	if c.TruncateOptions&1 != 0 {
		s += " CASCADE"
	}
	return s
}

// ddlStmt is the statement text of an inserted tandem.ddl row.
func ddlStmt(c Change) (string, bool) {
	for i, col := range c.Rel.Columns {
		if col.Name == "stmt" && i < len(c.New) && c.New[i].Kind == ValueText {
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
		strings.HasPrefix(pgErr.Code, "57P"),                                           // shutting down, cannot connect now
		strings.HasPrefix(pgErr.Code, "53"),                                            // out of resources
		pgErr.Code == "55006" && strings.Contains(pgErr.Message, "replication origin"): // origin still held by a dying session
		return false
	}
	return true
}
