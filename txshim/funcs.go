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
// (PostgreSQL refuses writes in STABLE and IMMUTABLE SQL and PL/pgSQL functions) — and the
// session takes a read that calls one of them for a write: it is wrapped and committed on both
// databases like an INSERT (DESIGN §5.3).
//
// A transaction that notifies cannot be prepared: PREPARE fails (0A000) and the client gets
// that error. The lexer sees NOTIFY and pg_notify written in a statement, not in a function or
// a trigger; writerFuncs also knows, from their source text, the functions that may notify
// and the tables with an enabled trigger whose function may, and the session marks a statement
// calling such a function, or a write naming such a table, as one whose transaction cannot be
// prepared: it commits plainly, its reply waiting for the peer (awaitShipped). A function that
// notifies through another function is not seen.
//
// The lists are read from the local database when the shim starts and again, in the
// background, when a statement needs them and they are older than Options.FuncRefresh, or
// ddlReread after DDL through the shim (a trigger may have been made); a function created
// through the shim counts at once. A read of a view that calls such a function (directly or
// through other views) is a write too. Not seen: a writing function called by one declared
// STABLE or IMMUTABLE (PostgreSQL lets it write), and what was created behind the shim's back
// until the next read; what they write commits plainly.
type writerFuncs struct {
	every  time.Duration
	load   func(ctx context.Context) (*catalogInfo, error)
	logger *slog.Logger

	mu      sync.Mutex
	base    context.Context        // loads end with it (Serve's); nil: Background
	wg      sync.WaitGroup         // loads in progress
	cat     *catalogInfo           // nil: not loaded yet
	tried   time.Time              // when the last load started
	due     time.Time              // when the lists are to be read again (at the next check)
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
	notifyRels map[string]struct{} // tables with an enabled trigger that may notify
}

// funcWait bounds how long a statement waits for the first read of the lists; past it, a read
// that calls a function is taken for a write.
const funcWait = 2 * time.Second

// notifyRE finds, in a function's source, what may notify (or listen) — a heuristic.
const notifyRE = `'(pg_notify|\mnotify\M|\mlisten\M|\munlisten\M)'`

// writerProc is the condition on pg_proc p for a function that may write.
const writerProc = `p.prokind = 'f' AND p.provolatile = 'v'
  AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
  AND p.pronamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace)`

// catalogQuery lists the functions that may write, and whether they may notify (trigger
// functions cannot be called); the views whose query calls one, directly or through other
// views; and the tables with an enabled trigger whose function may notify.
const catalogQuery = `SELECT p.proname, bool_or(CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_functiondef(p.oid) ELSE p.prosrc END ~* ` + notifyRE + `)
FROM pg_catalog.pg_proc p WHERE ` + writerProc + `
GROUP BY p.proname;
WITH RECURSIVE v(relid) AS (
  SELECT r.ev_class FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
    JOIN pg_catalog.pg_proc p ON d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.refobjid = p.oid
  WHERE ` + writerProc + `
  UNION
  SELECT r.ev_class FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
    JOIN v ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = v.relid
)
SELECT DISTINCT c.relname FROM v JOIN pg_catalog.pg_class c ON c.oid = v.relid WHERE c.relkind = 'v';
SELECT DISTINCT c.relname FROM pg_catalog.pg_trigger t
  JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND p.prosrc ~* ` + notifyRE + `
`

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
			res, err := conn.Exec(ctx, catalogQuery).ReadAll()
			if err != nil {
				return nil, err
			}
			if len(res) != 3 {
				return nil, fmt.Errorf("catalog query: %d results", len(res))
			}
			cat := &catalogInfo{funcs: make(map[string]bool, len(res[0].Rows)), writeViews: map[string]struct{}{}, notifyRels: map[string]struct{}{}}
			for _, r := range res[0].Rows {
				cat.funcs[string(r[0])] = string(r[1]) == "t"
			}
			for _, r := range res[1].Rows {
				cat.writeViews[string(r[0])] = struct{}{}
			}
			for _, r := range res[2].Rows {
				cat.notifyRels[string(r[0])] = struct{}{}
			}
			return cat, nil
		},
	}
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
// (text: the statement, searched for what may notify), and the lists are read again at the
// next statement that needs them (a trigger, say, may have been made).
func (f *writerFuncs) noteDDL(st *statement, text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.Creates != "" {
		f.created[st.Creates] = createdFunc{at: time.Now(), notify: mayNotify(text)}
	}
	// Soon after, once the statement has likely committed.
	if soon := time.Now().Add(ddlReread); soon.Before(f.due) {
		f.due = soon
	}
}

// ddlReread is how soon after DDL through the shim the lists are read again.
const ddlReread = 300 * time.Millisecond

// mayNotify tells whether a text mentions notifying or listening (the shim's side of notifyRE).
func mayNotify(text string) bool {
	t := strings.ToLower(text)
	return strings.Contains(t, "notify") || strings.Contains(t, "listen")
}

// check takes a read that calls a function that may write for a write, and marks a statement
// that calls a function that may notify, or a write that names a table whose trigger may, as
// one whose transaction cannot be prepared.
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
	write, notify := st.ManyCalls && (len(f.cat.funcs) > 0 || len(f.created) > 0), false
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
	NotifyTables       []string  // tables with an enabled trigger whose function may notify, sorted
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
