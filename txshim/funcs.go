package txshim

import (
	"context"
	"log/slog"
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
// The set is read from the local database when the shim starts and again, in the background,
// when a statement needs it and it is older than Options.FuncRefresh; a function created
// through the shim counts at once. Not seen: calls hidden in a view, and functions created
// behind the shim's back until the next read of the set; what they write is committed plainly
// as before (Stats.Unwrapped when the shim sees the xid).
type writerFuncs struct {
	every  time.Duration
	load   func(ctx context.Context) (map[string]struct{}, error)
	logger *slog.Logger

	mu       sync.Mutex
	base     context.Context      // loads end with it (Serve's); nil: Background
	wg       sync.WaitGroup       // loads in progress
	names    map[string]struct{}  // nil: not loaded yet
	tried    time.Time            // when the last load started
	loading  chan struct{}        // closed when the load in progress ends; nil: none
	created  map[string]time.Time // created through the shim, and when
	failures int                  // loads failed in a row
}

// funcWait bounds how long a statement waits for the first load of the set; past it, a read
// that calls anything not known to be harmless is taken for a write.
const funcWait = 2 * time.Second

// writerFuncsQuery lists the functions that may write. Trigger functions cannot be called.
const writerFuncsQuery = `SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p
WHERE p.prokind = 'f' AND p.provolatile = 'v'
  AND p.prorettype <> 'pg_catalog.trigger'::pg_catalog.regtype
  AND p.pronamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace)`

func newWriterFuncs(cfg *pgconn.Config, every time.Duration, logger *slog.Logger) *writerFuncs {
	if every <= 0 {
		every = 10 * time.Second
	}
	return &writerFuncs{
		every:   every,
		logger:  logger,
		created: map[string]time.Time{},
		load: func(ctx context.Context) (map[string]struct{}, error) {
			conn, err := pgconn.ConnectConfig(ctx, cfg.Copy())
			if err != nil {
				return nil, err
			}
			defer conn.Close(context.Background())
			res := conn.ExecParams(ctx, writerFuncsQuery, nil, nil, nil, nil).Read()
			if res.Err != nil {
				return nil, res.Err
			}
			names := make(map[string]struct{}, len(res.Rows))
			for _, r := range res.Rows {
				names[string(r[0])] = struct{}{}
			}
			return names, nil
		},
	}
}

// start loads the set in the background; loads end with ctx, and stop waits for them.
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
	f.tried = start
	base := f.base
	if base == nil {
		base = context.Background()
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		ctx, cancel := context.WithTimeout(base, 10*time.Second)
		names, err := f.load(ctx)
		cancel()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.loading = nil
		if err != nil && base.Err() != nil {
			return // the shim is stopping
		}
		if err != nil {
			f.failures++
			if f.failures == 1 {
				f.logger.Warn("txshim: cannot read which functions may write (until it can, reads calling a function are taken for writes if it never could)", "err", err)
			}
			return
		}
		if f.failures > 0 {
			f.logger.Info("txshim: read which functions may write again", "failures", f.failures)
		}
		f.failures = 0
		for name, at := range f.created {
			if at.Before(start) {
				delete(f.created, name) // the load saw it, or it was dropped since
			}
		}
		f.names = names
	}()
	return done
}

// noteCreated counts a function created through the shim at once.
func (f *writerFuncs) noteCreated(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created[name] = time.Now()
}

// mayWrite tells whether a read calling names (and more when many) may write.
func (f *writerFuncs) mayWrite(names []string, many bool) bool {
	if len(names) == 0 && !many {
		return false
	}
	f.mu.Lock()
	if f.names == nil {
		wait := f.refreshLocked()
		f.mu.Unlock()
		select {
		case <-wait:
		case <-time.After(funcWait):
		}
		f.mu.Lock()
	} else if time.Since(f.tried) > f.every {
		f.refreshLocked()
	}
	defer f.mu.Unlock()
	if f.names == nil {
		return true // not known: err toward the dual commit
	}
	if many && (len(f.names) > 0 || len(f.created) > 0) {
		return true
	}
	for _, n := range names {
		if _, ok := f.names[n]; ok {
			return true
		}
		if _, ok := f.created[n]; ok {
			return true
		}
	}
	return false
}
