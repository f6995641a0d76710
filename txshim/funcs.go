package txshim

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// A statement the lexer takes for a read can still write: SELECT f() where f inserts. Committed
// as a read, such a transaction never meets the dual commit — PostgreSQL commits it plainly and
// the decoder ships it from the stream afterwards — so the client hears of its commit before the
// peer has it, and a failover in between loses what the client saw committed. writerFuncs knows
// which functions may write — the volatile functions outside pg_catalog and information_schema
// (PostgreSQL refuses writes in STABLE and IMMUTABLE SQL and PL/pgSQL functions), and any
// function whose source names one that may (closeOver) — and the session takes a read that
// calls one of them for a write: it is wrapped and committed on both databases like an INSERT
// (DESIGN §5.3).
//
// A transaction that notifies cannot be prepared: PREPARE fails (0A000) and the client gets
// that error. The lexer sees NOTIFY and pg_notify written in a statement, not in a function or
// a trigger; writerFuncs also knows, from their source text, the functions that may notify
// (themselves or through a function they name) and the tables with an enabled trigger whose
// function may, and the session marks a statement calling such a function, or a write naming
// such a table, as one whose transaction cannot be prepared: it commits plainly, its reply
// waiting for the peer (awaitShipped).
//
// The lists are read from the local database when the shim starts and again, in the
// background, when a statement needs them and they are older than Options.FuncRefresh, or
// ddlReread after DDL through the shim (a trigger may have been made); a function created
// through the shim counts at once. A read of a view that calls such a function (directly or
// through other views) is a write too. Not seen: what was created behind the shim's back until
// the next read, functions in pg_catalog and information_schema, and C functions that write
// through SPI; what they write commits plainly, its reply waiting for the peer only inside an
// explicit transaction.
type writerFuncs struct {
	every  time.Duration
	load   func(ctx context.Context) (*catalogInfo, error)
	logger *slog.Logger

	mu    sync.Mutex
	base  context.Context // loads end with it (Serve's); nil: Background
	wg    sync.WaitGroup  // loads in progress
	cat   *catalogInfo    // nil: not loaded yet
	tried time.Time       // when the last load started
	due   time.Time       // when the lists are to be read again (at the next check)
	// ddlDue: DDL went through the shim since due was set (noteDDL); the statement that finds
	// the lists due then waits for them to be read again, as do those that come meanwhile
	// (ddlLoad, the load's channel): with the lists read before, the first transaction that
	// wrote a table a new trigger notifies failed its PREPARE.
	ddlDue  bool
	ddlLoad <-chan struct{}
	ddlAt   time.Time              // the last DDL noted: a load begun before leaves ddlDue set
	loading chan struct{}          // closed when the load in progress ends; nil: none
	created map[string]createdFunc // created through the shim
	readAt  time.Time              // when the load that gave cat started
	lastErr error                  // the last load's error (warned once); nil once one succeeds
}

// createdFunc is a function created through the shim: when, and whether its text may notify.
type createdFunc struct {
	at     time.Time
	notify bool
}

// catalogInfo is what a load found.
type catalogInfo struct {
	funcs      map[string]bool     // functions that may write: name → it may notify
	writeViews map[string]struct{} // views that call such a function, or such a view
	// notifyRels: relations that make a transaction naming them notify: tables with an enabled
	// trigger or a column default that may notify, views that call pg_notify or a function
	// that may notify.
	notifyRels map[string]struct{}
}

// funcWait bounds how long a statement waits for the first read of the lists; past it, a read
// that calls a function is taken for a write.
const funcWait = 2 * time.Second

// funcQuery lists the functions and procedures outside pg_catalog and information_schema:
// oid, name, kind ('f', 'p', or 't' for a trigger function), whether volatile, and source text
// (a SQL-standard body as its definition). triggerQuery lists the tables with enabled triggers
// and their functions.
//
// The source text of a function ends with its arguments' list (pg_get_function_arguments): a
// default written there is evaluated where a call leaves the argument out, so a function it
// names is called too. A SQL-standard body is not deparsed (pg_get_functiondef locks the tables
// it reads: the read waited for DDL left open on one): its source is the names of the functions
// it depends on, directly or through an operator, and pg_notify when its stored tree calls it
// (pinned, pg_notify has no dependencies recorded). An aggregate is listed as a function ('f') whose volatility does not
// count and whose source is the names of its support functions, which its calls run.
const funcQuery = `SELECT p.oid, p.proname,
  CASE WHEN p.prorettype = 'pg_catalog.trigger'::pg_catalog.regtype THEN 't' WHEN p.prokind = 'a' THEN 'f' ELSE p.prokind::text END,
  p.provolatile = 'v' AND p.prokind <> 'a',
  CASE WHEN p.prokind = 'a' THEN (SELECT pg_catalog.concat_ws(' ', a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn,
      a.aggdeserialfn, a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn) FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid)
    WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.concat_ws(' ',
      (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(f.proname), ' ') FROM pg_catalog.pg_depend d
        JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) CASE WHEN d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
          THEN d.refobjid ELSE (SELECT o.oprcode::pg_catalog.oid FROM pg_catalog.pg_operator o WHERE o.oid OPERATOR(pg_catalog.=) d.refobjid) END
      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid OPERATOR(pg_catalog.=) p.oid
        AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_operator'::pg_catalog.regclass)),
      CASE WHEN pg_catalog.strpos(p.prosqlbody::pg_catalog.text, ':funcid ' OPERATOR(pg_catalog.||)
        'pg_catalog.pg_notify(pg_catalog.text,pg_catalog.text)'::pg_catalog.regprocedure::pg_catalog.oid::pg_catalog.text OPERATOR(pg_catalog.||) ' ')
        OPERATOR(pg_catalog.>) 0 THEN 'pg_notify' END) || E'\n' || pg_catalog.pg_get_function_arguments(p.oid)
    ELSE p.prosrc || E'\n' || pg_catalog.pg_get_function_arguments(p.oid) END
FROM pg_catalog.pg_proc p
WHERE p.prokind IN ('f', 'p', 'a')
  AND p.pronamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace)`

// viewsCallingSQL and viewsOverViewsSQL are the parts of viewQuery and notifyRelQuery, a
// recursive v(relid): the views whose rules call one of the functions $1 (an oid array),
// directly or through an operator; and, from those in v, the views over them, and the names of
// all.
const (
	viewsCallingSQL = `  SELECT r.ev_class FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
  WHERE d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid = ANY ($1::pg_catalog.oid[])
    OR d.refclassid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND d.refobjid IN (
      SELECT o.oid FROM pg_catalog.pg_operator o WHERE o.oprcode::pg_catalog.oid = ANY ($1::pg_catalog.oid[]))
`
	viewsOverViewsSQL = `  SELECT r.ev_class FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
    JOIN v ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = v.relid
)
SELECT DISTINCT c.relname FROM v JOIN pg_catalog.pg_class c ON c.oid = v.relid WHERE c.relkind = 'v'`
)

const triggerQuery = `SELECT DISTINCT c.relname, t.tgfoid FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgenabled <> 'D'`

// viewQuery lists the views whose query calls one of the functions $1 (an oid array), directly,
// through an operator, or through other views.
const viewQuery = `WITH RECURSIVE v(relid) AS (
` + viewsCallingSQL + `  UNION
` + viewsOverViewsSQL

// notifyRelQuery lists the views that call one of the functions $1 or pg_notify (which, pinned,
// has no dependencies recorded: its call, a FuncExpr with its oid, is looked for in the view's
// stored query tree), directly or through other views (as viewQuery), and the tables with a
// column default that calls one. The trees are read as text, not deparsed: pg_get_viewdef
// locks the view and the tables it reads, so the read waited for DDL left open on one of them
// (and every statement waiting for the read with it), and a name such as pg_notify_x counted.
const notifyRelQuery = `WITH RECURSIVE n(pat) AS (
  SELECT ':funcid ' OPERATOR(pg_catalog.||)
    'pg_catalog.pg_notify(pg_catalog.text,pg_catalog.text)'::pg_catalog.regprocedure::pg_catalog.oid::pg_catalog.text
    OPERATOR(pg_catalog.||) ' '
), v(relid) AS (
` + viewsCallingSQL + `  UNION
  SELECT r.ev_class FROM pg_catalog.pg_rewrite r
  WHERE pg_catalog.strpos(r.ev_action::pg_catalog.text, (SELECT pat FROM n)) > 0
  UNION
` + viewsOverViewsSQL + `
UNION
SELECT c.relname FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid = a.adrelid
WHERE a.oid IN (SELECT d.objid FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
    AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid = ANY ($1::pg_catalog.oid[]))
  OR pg_catalog.strpos(a.adbin::pg_catalog.text, (SELECT pat FROM n)) > 0`

func newWriterFuncs(cfg *pgconn.Config, every time.Duration, logger *slog.Logger) *writerFuncs {
	if every <= 0 {
		every = 10 * time.Second
	}
	return &writerFuncs{
		every:   every,
		logger:  logger,
		created: map[string]createdFunc{},
		load: func(ctx context.Context) (*catalogInfo, error) {
			conn, err := pgconn.ConnectConfig(ctx, cfg.Copy())
			if err != nil {
				return nil, err
			}
			defer conn.Close(context.Background())
			return readCatalog(ctx, conn)
		},
	}
}

// readCatalog reads the functions, triggers and views and works out what may write or notify.
func readCatalog(ctx context.Context, conn *pgconn.PgConn) (*catalogInfo, error) {
	res, err := conn.Exec(ctx, funcQuery+";\n"+triggerQuery).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("catalog query: %d results", len(res))
	}
	fns := make([]catalogFunc, 0, len(res[0].Rows))
	for _, r := range res[0].Rows {
		kind := byte('f')
		if len(r[2]) == 1 {
			kind = r[2][0]
		}
		fns = append(fns, catalogFunc{oid: string(r[0]), name: string(r[1]), kind: kind, volatile: string(r[3]) == "t", src: string(r[4])})
	}
	trigs := make([][2]string, 0, len(res[1].Rows))
	for _, r := range res[1].Rows {
		trigs = append(trigs, [2]string{string(r[0]), string(r[1])})
	}
	cat, writerOIDs := closeOver(fns, trigs)
	if len(writerOIDs) > 0 {
		arr := "{" + strings.Join(writerOIDs, ",") + "}"
		vr := conn.ExecParams(ctx, viewQuery, [][]byte{[]byte(arr)}, nil, nil, nil).Read()
		if vr.Err != nil {
			return nil, vr.Err
		}
		for _, r := range vr.Rows {
			cat.writeViews[string(r[0])] = struct{}{}
		}
	}
	var notifierOIDs []string
	for _, fn := range fns {
		if fn.kind == 'f' && cat.funcs[fn.name] {
			notifierOIDs = append(notifierOIDs, fn.oid)
		}
	}
	arr := "{" + strings.Join(notifierOIDs, ",") + "}"
	nr := conn.ExecParams(ctx, notifyRelQuery, [][]byte{[]byte(arr)}, nil, nil, nil).Read()
	if nr.Err != nil {
		return nil, nr.Err
	}
	for _, r := range nr.Rows {
		cat.notifyRels[string(r[0])] = struct{}{}
	}
	return cat, nil
}

// catalogFunc is a function or procedure as funcQuery lists it.
type catalogFunc struct {
	oid, name string
	kind      byte // 'f' function, 'p' procedure, 't' trigger function
	volatile  bool
	src       string
}

// closeOver works out, from the functions' volatility and the names their sources mention,
// which may write and which may notify. A volatile function may write (PostgreSQL refuses
// writes in STABLE and IMMUTABLE SQL and PL/pgSQL functions, but lets them call a volatile
// one), and so may a function that runs SQL built at run time (EXECUTE: it may call any
// function) and any function whose source names one that may: the relation is followed to its
// end. A function may notify when its source says NOTIFY, LISTEN, UNLISTEN or pg_notify, or
// names one that may. Names stand for all their overloads, and a name in a comment or a string
// counts (EXECUTE 'SELECT f()' calls f): the lists err toward the dual commit.
//
// It returns the catalogInfo without views, and the oids of the functions that may write (for
// viewQuery). trigs are (table, trigger function oid) pairs.
func closeOver(fns []catalogFunc, trigs [][2]string) (*catalogInfo, []string) {
	names := make(map[string]struct{}, len(fns))
	for _, fn := range fns {
		names[fn.name] = struct{}{}
	}
	// mentionedBy: for each name, the functions whose source names it; notifies: a function's
	// source says it notifies.
	mentionedBy := map[string][]int{}
	notifies, dynamic := make([]bool, len(fns)), make([]bool, len(fns))
	for i, fn := range fns {
		seen := map[string]struct{}{}
		sourceWords(fn.src, func(w string) {
			if notifyWord(w) {
				notifies[i] = true
			}
			if dynamicWord(w) {
				dynamic[i] = true
			}
			if _, ok := names[w]; !ok {
				return
			}
			if _, ok := seen[w]; ok {
				return
			}
			seen[w] = struct{}{}
			mentionedBy[w] = append(mentionedBy[w], i)
		})
	}
	// spread marks, from the names in set, every name of a callable function whose source
	// names a marked one.
	spread := func(set map[string]bool) {
		queue := slices.Collect(maps.Keys(set))
		for len(queue) > 0 {
			n := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			for _, i := range mentionedBy[n] {
				if fns[i].kind != 't' && !set[fns[i].name] {
					set[fns[i].name] = true
					queue = append(queue, fns[i].name)
				}
			}
		}
	}
	writes, notify := map[string]bool{}, map[string]bool{}
	for i, fn := range fns {
		if fn.kind == 't' {
			continue
		}
		if fn.volatile || dynamic[i] {
			writes[fn.name] = true
		}
		if notifies[i] {
			notify[fn.name] = true
		}
	}
	spread(writes)
	spread(notify)

	cat := &catalogInfo{funcs: map[string]bool{}, writeViews: map[string]struct{}{}, notifyRels: map[string]struct{}{}}
	var writerOIDs []string
	notifyTrig := map[string]bool{}
	for i, fn := range fns {
		switch fn.kind {
		case 'f':
			if writes[fn.name] || notify[fn.name] {
				cat.funcs[fn.name] = notify[fn.name]
			}
			if writes[fn.name] {
				writerOIDs = append(writerOIDs, fn.oid)
			}
		case 't':
			// A trigger function notifies by its own text or through a function it names.
			notifyTrig[fn.oid] = notifies[i]
		}
	}
	for n := range notify {
		for _, i := range mentionedBy[n] {
			if fns[i].kind == 't' {
				notifyTrig[fns[i].oid] = true
			}
		}
	}
	for _, t := range trigs {
		if notifyTrig[t[1]] {
			cat.notifyRels[t[0]] = struct{}{}
		}
	}
	return cat, writerOIDs
}

// dynamicWord tells whether a word of a function's source runs SQL built at run time
// (PL/pgSQL and PL/Python EXECUTE, PL/Perl's and PL/Tcl's SPI calls).
func dynamicWord(w string) bool {
	switch w {
	case "execute", "spi_exec", "spi_exec_query", "spi_exec_prepared", "spi_query", "spi_query_prepared":
		return true
	}
	return false
}

// notifyWord tells whether a word of a function's source notifies or listens.
func notifyWord(w string) bool {
	switch w {
	case "notify", "pg_notify", "listen", "unlisten":
		return true
	}
	return false
}

// sourceWords calls fn with each word of a function's source that may name a function: runs
// of letters, digits, _ and $, folded to lower case, and "quoted identifiers" as they are
// inside the quotes. A word with $ in it also gives its parts (a dollar quote's tag runs into
// the word after it). Quotes, comments and dollar quotes are not told apart from code: a name
// in them counts.
func sourceWords(src string, fn func(string)) {
	var buf []byte
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '"':
			j := strings.IndexByte(src[i+1:], '"')
			if j < 0 {
				return
			}
			fn(src[i+1 : i+1+j])
			i += j + 2
		case wordByte(c):
			j := i
			for j < len(src) && wordByte(src[j]) {
				j++
			}
			buf = buf[:0]
			for k := i; k < j; k++ {
				b := src[k]
				if 'A' <= b && b <= 'Z' {
					b += 'a' - 'A'
				}
				buf = append(buf, b)
			}
			w := string(buf)
			fn(w)
			if strings.Contains(w, "$") {
				for part := range strings.SplitSeq(w, "$") {
					if part != "" {
						fn(part)
					}
				}
			}
			i = j
		default:
			i++
		}
	}
}

func wordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// start reads the lists in the background; reads end with ctx, and stop waits for them.
func (f *writerFuncs) start(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.base = ctx
	f.refreshLocked()
}

func (f *writerFuncs) stop() { f.wg.Wait() }

func (f *writerFuncs) refreshLocked() <-chan struct{} {
	if f.loading != nil {
		return f.loading
	}
	done := make(chan struct{})
	f.loading = done
	start := time.Now()
	f.tried, f.due = start, start.Add(f.every)
	base := f.base
	if base == nil {
		base = context.Background()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(base, 10*time.Second)
		cat, err := f.load(ctx)
		cancel()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.loading = nil
		if f.ddlLoad == done {
			f.ddlLoad = nil
		}
		if start.Before(f.ddlAt) {
			f.ddlDue = true // blind to the DDL: another read is due
		}
		if err != nil && base.Err() != nil {
			return // the shim is stopping
		}
		if err != nil {
			if f.lastErr == nil {
				f.logger.Warn("txshim: cannot read which functions and views may write and which triggers notify; "+
					"the lists last read stand, and without any a read that calls a function is taken for a write", "err", err)
			}
			f.lastErr = err
			return
		}
		if f.lastErr != nil {
			f.logger.Info("txshim: read which functions and views may write again")
		}
		for name, c := range f.created {
			// Noted when lexed, before it committed: kept until loads long after saw it.
			if time.Since(c.at) > 2*f.every {
				delete(f.created, name)
			}
		}
		f.cat, f.readAt, f.lastErr = cat, start, nil
	}()
	return done
}

// noteDDL takes in a DDL statement sent through the shim: a function it creates counts at once
// when it may write or notify — volatile, running SQL built at run time, or naming a function
// known to (text: the statement, searched as closeOver searches sources) — and the lists are
// read again at the next statement that needs them (a trigger, say, may have been made).
func (f *writerFuncs) noteDDL(st *statement, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Creates != "" {
		writes, notify := !st.CreatesStable, false
		sourceWords(text, func(w string) {
			if notifyWord(w) {
				notify = true
			}
			if dynamicWord(w) {
				writes = true
			}
			if w == st.Creates {
				return // its own name
			}
			nt, ok := false, false
			if f.cat != nil {
				nt, ok = f.cat.funcs[w]
			}
			if c, in := f.created[w]; in {
				nt, ok = nt || c.notify, true
			}
			writes, notify = writes || ok, notify || nt
		})
		if writes || notify {
			f.created[st.Creates] = createdFunc{at: time.Now(), notify: notify}
		}
	}
	f.rereadLocked()
}

// noteDDLCommit takes in the COMMIT of a transaction that ran DDL through the shim: a read
// after the DDL, before this COMMIT, did not see what it made.
func (f *writerFuncs) noteDDLCommit() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rereadLocked()
}

// rereadLocked has the lists read again soon, once the statement has likely committed, and
// the statements that need them wait for that read (check).
func (f *writerFuncs) rereadLocked() {
	f.ddlAt = time.Now()
	if soon := time.Now().Add(ddlReread); soon.Before(f.due) {
		f.due = soon
	}
	f.ddlDue = true
}

// ddlReread is how soon after DDL through the shim the lists are read again.
const ddlReread = 300 * time.Millisecond

// largeObjectWriters are the functions in pg_catalog that write large objects. PostgreSQL
// before 16 runs them in a read-only transaction too, so default_transaction_read_only does not
// stop them: a read that calls one is taken for a write (callsLargeObjectWriter), which read-only
// modes wrap and refuse at commit. lo_open in write mode writes nothing by itself; lowrite does.
var largeObjectWriters = map[string]bool{
	"lo_creat": true, "lo_create": true, "lo_unlink": true, "lo_import": true, "lo_from_bytea": true,
	"lo_put": true, "lowrite": true, "lo_truncate": true, "lo_truncate64": true,
}

// callsLargeObjectWriter tells whether calls (statement.Calls) name one of largeObjectWriters.
func callsLargeObjectWriter(calls []string) bool {
	var buf [64]byte
	for _, n := range calls {
		if largeObjectWriters[string(foldName(n, buf[:0]))] {
			return true
		}
	}
	return false
}

// check takes a read that calls a function that may write, or names a view that calls one, for
// a write, and marks a statement that calls a function that may notify, or a write that names a
// table whose trigger may, as one whose transaction cannot be prepared. Calls or names past those
// the lexer kept (ManyCalls, ManyNames) may be any: a read with them is a write once any function
// (for calls) or view (for names) is known to write.
func (f *writerFuncs) check(st *statement) {
	if len(st.Calls) == 0 && !st.ManyCalls && len(st.Names) == 0 {
		return
	}
	calls := len(st.Calls) > 0 || st.ManyCalls
	f.mu.Lock()
	// Never read: a read or a retry at most once a second (a failing read does not make every
	// statement try again), and a statement that calls a function waits for it.
	retry := f.cat == nil && (f.loading != nil || time.Since(f.tried) > time.Second)
	switch {
	case retry && calls:
		wait := f.refreshLocked()
		f.mu.Unlock()
		select {
		case <-wait:
		case <-time.After(funcWait):
		}
		f.mu.Lock()
	case f.cat != nil && (f.ddlLoad != nil || (f.ddlDue && time.Now().After(f.due))):
		// Until a read begun after the DDL ends: one in progress may have begun before.
		deadline := time.After(funcWait)
		for f.ddlLoad != nil || (f.ddlDue && time.Now().After(f.due)) {
			if f.ddlLoad == nil {
				f.ddlDue = false
				f.ddlLoad = f.refreshLocked()
			}
			wait := f.ddlLoad
			f.mu.Unlock()
			late := false
			select {
			case <-wait:
			case <-deadline:
				late = true
			}
			f.mu.Lock()
			if late {
				break
			}
		}
	case retry || time.Now().After(f.due):
		f.refreshLocked()
	}
	defer f.mu.Unlock()
	if f.cat == nil {
		// Not known: a read that calls a function errs toward the dual commit.
		if calls && st.Kind == kindRead {
			st.Kind = kindWrite
		}
		return
	}
	write := (st.ManyCalls && (len(f.cat.funcs) > 0 || len(f.created) > 0)) || (st.ManyNames && len(f.cat.writeViews) > 0)
	notify := false
	var buf [64]byte
	if len(f.cat.funcs) > 0 || len(f.created) > 0 {
		for _, n := range st.Calls {
			key := foldName(n, buf[:0])
			if nt, ok := f.cat.funcs[string(key)]; ok {
				write, notify = true, notify || nt
			} else if c, ok := f.created[string(key)]; ok {
				write, notify = true, notify || c.notify
			}
		}
	}
	if len(f.cat.writeViews) > 0 || len(f.cat.notifyRels) > 0 {
		for _, n := range st.Names {
			key := foldName(n, buf[:0])
			if _, ok := f.cat.writeViews[string(key)]; ok {
				write = true
			}
			if _, ok := f.cat.notifyRels[string(key)]; ok {
				notify = true
			}
		}
	}
	if write && st.Kind == kindRead {
		st.Kind = kindWrite
	}
	if notify {
		st.Unpreparable = true
	}
}

// CatalogInfo is what the shim last read of what makes a read write or a transaction notify
// (funcs.go): what status shows.
type CatalogInfo struct {
	ReadAt             time.Time // zero: never read
	WriterFunctions    int       // volatile functions outside pg_catalog (names, overloads merged)
	NotifyingFunctions int       // of them, those whose source mentions NOTIFY or LISTEN
	WriterViews        []string  // views that call a writer function, sorted
	NotifyTables       []string  // relations that may notify (catalogInfo.notifyRels), sorted
	Err                string    // the last read failed
}

// Catalog returns what the shim last read of the local database's functions, views and
// triggers (funcs.go).
func (s *Shim) Catalog() CatalogInfo {
	f := s.funcs
	f.mu.Lock()
	defer f.mu.Unlock()
	info := CatalogInfo{ReadAt: f.readAt}
	if f.lastErr != nil {
		info.Err = f.lastErr.Error()
	}
	if f.cat == nil {
		return info
	}
	info.WriterFunctions = len(f.cat.funcs)
	for _, notify := range f.cat.funcs {
		if notify {
			info.NotifyingFunctions++
		}
	}
	info.WriterViews = slices.Sorted(maps.Keys(f.cat.writeViews))
	info.NotifyTables = slices.Sorted(maps.Keys(f.cat.notifyRels))
	return info
}
