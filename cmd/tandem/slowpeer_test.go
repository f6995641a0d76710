package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/internal/slowlink"
	"github.com/tandem-ha/tandem/txshim"
)

// logRec records the database side's log lines with their times.
type logRec struct {
	mu    sync.Mutex
	lines []string
	w     io.Writer
}

type recHandler struct {
	r     *logRec
	attrs []slog.Attr
}

func (h recHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelDebug }
func (h recHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", rec.Time.Format("15:04:05.000"), rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	h.r.mu.Lock()
	h.r.lines = append(h.r.lines, b.String())
	if h.r.w != nil {
		fmt.Fprintln(h.r.w, b.String())
	}
	h.r.mu.Unlock()
	return nil
}
func (h recHandler) WithAttrs(as []slog.Attr) slog.Handler { return h }
func (h recHandler) WithGroup(string) slog.Handler         { return h }

func (r *logRec) count(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// slowSite2 is dualSite2 with the peer database reached through a slow relay.
func slowSite2(t *testing.T, commitTimeout time.Duration, log *slog.Logger) (*database, *slowlink.Link, *sql.DB) {
	t.Helper()
	local, peer := pgtest.Start(t), pgtest.Start(t)
	ldb, pdb := local.Open(t, local.Database()), peer.Open(t, peer.Database())
	for _, db := range []*sql.DB{ldb, pdb} {
		if _, err := db.Exec(`CREATE TABLE acct (id int PRIMARY KEY, balance int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	localDSN := local.DSN(local.Database())
	relay := slowlink.Start(t, fmt.Sprintf("127.0.0.1:%d", peer.Port()))
	peerDSN := relay.DSN(t, peer.DSN(peer.Database()))
	if err := txshim.Install(ctx, "site2", localDSN, peerDSN, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := txshim.WriteTermRecord(ctx, ldb, 1, "site2", true); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Kind: config.KindSite, Site: "site2", DataDir: t.TempDir(),
		TxShim: &config.TxShim{Listen: "127.0.0.1:0", LocalDSN: localDSN, PeerDSN: peerDSN, PeerDown: config.PeerDownContinue,
			MaxMessage: config.DefaultMaxMessage, CommitTimeout: commitTimeout}}
	d, err := newDatabase(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	shipped := make(chan error, 1)
	go func() { shipped <- d.ship.Run(rctx) }()
	sctx, sstop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); d.shim.Serve(sctx) }()
	t.Cleanup(func() {
		sstop()
		<-served
		stop()
		<-shipped
		d.close()
	})
	if synced, err := d.promote(ctx, 1); err != nil || !synced {
		t.Fatalf("promote(1): synced %v, %v; want dual", synced, err)
	}
	return d, relay, pdb
}

// TestSlowPeer measures a master whose peer database is reachable only over a slow link, under
// a steady write load: SLOWPEER_DELAYS is a comma-separated list of one-way delays (each held
// for SLOWPEER_PHASE), cycled for SLOWPEER_RUN. Skipped unless SLOWPEER_RUN is set.
func TestSlowPeer(t *testing.T) {
	t.Parallel()
	run, _ := time.ParseDuration(os.Getenv("SLOWPEER_RUN"))
	if run == 0 {
		t.Skip("SLOWPEER_RUN not set")
	}
	phase, _ := time.ParseDuration(os.Getenv("SLOWPEER_PHASE"))
	if phase == 0 {
		phase = run
	}
	var delays []time.Duration
	for _, s := range strings.Split(os.Getenv("SLOWPEER_DELAYS"), ",") {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		delays = append(delays, d)
	}
	ct := time.Second
	if s := os.Getenv("SLOWPEER_CT"); s != "" {
		ct, _ = time.ParseDuration(s)
	}
	rec := &logRec{}
	if os.Getenv("SLOWPEER_LOG") != "" {
		f, err := os.Create(os.Getenv("SLOWPEER_LOG"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rec.w = f
	}
	d, relay, pdb := slowSite2(t, ct, slog.New(recHandler{r: rec}))
	port := d.shim.Addr().(*net.TCPAddr).Port
	var dbname string
	if err := d.local.QueryRow(`SELECT current_database()`).Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	app, err := txshim.OpenDB(fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgtest.Superuser, port, dbname))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.SetMaxOpenConns(8)

	ctx, cancel := context.WithTimeout(context.Background(), run+3*time.Minute)
	defer cancel()
	start := time.Now()
	end := start.Add(run)

	// The catch-up loop of run.go: every 2 s while master.
	cuCtx, cuStop := context.WithCancel(ctx)
	cuDone := make(chan struct{})
	go func() {
		defer close(cuDone)
		tk := time.NewTicker(2 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-cuCtx.Done():
				return
			case <-tk.C:
			}
			d.catchUp(cuCtx)
		}
	}()

	// The delay schedule.
	go func() {
		for i := 0; time.Now().Before(end); i++ {
			relay.SetDelay(delays[i%len(delays)])
			select {
			case <-time.After(phase):
			case <-ctx.Done():
				return
			}
		}
	}()

	// Mode monitor.
	type sample struct {
		at     time.Duration
		mode   txshim.Mode
		synced bool
	}
	var samples []sample
	monDone := make(chan struct{})
	var violations []string
	var acked sync.Map // id -> ack time
	go func() {
		defer close(monDone)
		lastDual := false
		for time.Now().Before(end) {
			m, _ := d.shim.Mode()
			syn := d.ship.PeerSynced()
			samples = append(samples, sample{time.Since(start), m, syn})
			dual := m == txshim.ModeDual && syn
			if dual && !lastDual {
				// Every commit acknowledged before now must be on the peer: committed, or
				// prepared there (dual commits whose COMMIT PREPARED is on its way).
				now := time.Now()
				var want []int
				acked.Range(func(k, v any) bool {
					if v.(time.Time).Before(now) {
						want = append(want, k.(int))
					}
					return true
				})
				have := map[int]bool{}
				rows, err := pdb.QueryContext(ctx, `SELECT id FROM acct`)
				if err == nil {
					for rows.Next() {
						var id int
						rows.Scan(&id)
						have[id] = true
					}
					rows.Close()
				}
				var prep int
				pdb.QueryRowContext(ctx, `SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'tandem\_%'`).Scan(&prep)
				missing := 0
				for _, id := range want {
					if !have[id] {
						missing++
					}
				}
				if missing > prep {
					violations = append(violations, fmt.Sprintf("at %v: dual and synced with %d acknowledged commits not on the peer (%d prepared there)", time.Since(start).Round(time.Millisecond), missing, prep))
				}
			}
			lastDual = dual
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Writers.
	const writers = 4
	pause := 20 * time.Millisecond
	if s := os.Getenv("SLOWPEER_PAUSE"); s != "" {
		pause, _ = time.ParseDuration(s)
	}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errs []string
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				id := int(next.Add(1))
				t0 := time.Now()
				_, err := app.ExecContext(ctx, `INSERT INTO acct (id, balance) VALUES ($1, 1)`, id)
				el := time.Since(t0)
				mu.Lock()
				lat = append(lat, el)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%v: id %d: %v", time.Since(start).Round(time.Millisecond), id, err))
				} else {
					acked.Store(id, time.Now())
				}
				mu.Unlock()
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	<-monDone
	cuStop()
	<-cuDone

	// Figures.
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(float64(len(lat))*p))].Round(time.Millisecond)
	}
	var over1, over5 int
	for _, l := range lat {
		if l > time.Second {
			over1++
		}
		if l > 5*time.Second {
			over5++
		}
	}
	flipsToSolo, flipsToDual := 0, 0
	var dualTime, soloTime time.Duration
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if a.mode == txshim.ModeDual && b.mode == txshim.ModeSolo {
			flipsToSolo++
		}
		if a.mode == txshim.ModeSolo && b.mode == txshim.ModeDual {
			flipsToDual++
		}
		if a.mode == txshim.ModeDual {
			dualTime += b.at - a.at
		} else {
			soloTime += b.at - a.at
		}
	}
	st := d.shim.Stats()
	t.Logf("delays %v phase %v run %v commit_timeout %v", delays, phase, run, ct)
	t.Logf("commits: %d (errors %d), latency p50 %v p90 %v p99 %v max %v; >1s %d, >5s %d",
		len(lat), len(errs), pct(0.5), pct(0.9), pct(0.99), pct(1), over1, over5)
	t.Logf("shim stats: dual %d solo %d peer errors %d in doubt %d", st.CommitsDual, st.CommitsSolo, st.PeerErrors, st.LeftInDoubt)
	t.Logf("mode: dual→solo %d, solo→dual %d; time dual %v solo %v; peer-downs %d",
		flipsToSolo, flipsToDual, dualTime.Round(time.Millisecond), soloTime.Round(time.Millisecond), d.peerDowns())
	t.Logf("log: catch-up done %d, catch-up failed %d, holding now %d, going solo %d",
		rec.count("catch-up done"), rec.count("catch-up failed"), rec.count("holding them for the tail"), rec.count("going solo"))
	for i, e := range errs {
		if i >= 10 {
			break
		}
		t.Logf("client error: %s", e)
	}
	for _, v := range violations {
		t.Errorf("%s", v)
	}
	if len(errs) > 0 {
		t.Errorf("%d client errors on commits", len(errs))
	}
}
