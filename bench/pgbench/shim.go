package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/internal/pgtest"
	"github.com/tandem-ha/tandem/txshim"
)

const (
	site = "site1"
	term = 1
)

// installDual prepares two clusters holding the same pgbench tables for a dual-mode shim:
// txshim.Install on both and the term record (term 1, master site1, peer synced).
func installDual(ctx context.Context, local, peer *pgtest.Cluster, logger *slog.Logger) error {
	if err := txshim.Install(ctx, site, local.DSN(local.Database()), peer.DSN(peer.Database()), logger); err != nil {
		return err
	}
	for _, c := range []*pgtest.Cluster{local, peer} {
		db, err := sql.Open("postgres", c.DSN(c.Database()))
		if err != nil {
			return err
		}
		err = txshim.WriteTermRecord(ctx, db, term, site, true)
		db.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// dualShim is a Shipper and a Shim in dual mode running in this process.
type dualShim struct {
	shim    *txshim.Shim
	shipper *txshim.Shipper
	peer    *timedPeer
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    []error // from Run and Serve, read after wg.Wait
	mu      sync.Mutex
}

// startDual runs a Shipper (decoding localDSN, applying to peerDSN) and a Shim listening on
// listen (host:port or a Unix socket's path) whose sessions go to sessionDSN, in dual mode at
// term 1. Stop ends both.
func startDual(ctx context.Context, listen, sessionDSN, localDSN, peerDSN string, peerConns int, logger *slog.Logger) (*dualShim, error) {
	sh := txshim.NewShipper(txshim.ShipperConfig{Site: site, LocalDSN: localDSN, PeerDSN: peerDSN, Conns: peerConns, Logger: logger})
	sh.SetTerm(term)
	d := &dualShim{shipper: sh, peer: &timedPeer{Peer: sh}}
	s, err := txshim.New(config.TxShim{
		Listen:        listen,
		LocalDSN:      sessionDSN,
		PeerDown:      config.PeerDownContinue,
		MaxMessage:    1 << 20,
		CommitTimeout: 10 * time.Second,
	}, txshim.Options{Logger: logger, Site: site, Peer: d.peer})
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	s.SetMode(txshim.ModeDual, term)
	d.shim = s
	runCtx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	d.goRun("shipper", func() error { return sh.Run(runCtx) })
	d.goRun("shim", func() error { return s.Serve(runCtx) })
	return d, nil
}

func (d *dualShim) goRun(name string, run func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := run(); err != nil {
			d.mu.Lock()
			d.errs = append(d.errs, fmt.Errorf("%s: %w", name, err))
			d.mu.Unlock()
		}
	}()
}

// dsn is the URL pgbench uses to reach the shim.
func (d *dualShim) dsn(db string) string {
	if a, ok := d.shim.Addr().(*net.UnixAddr); ok {
		dir, name := filepath.Split(a.Name)
		port, _ := strconv.Atoi(strings.TrimPrefix(name, ".s.PGSQL."))
		return pgtest.SocketDSN(filepath.Clean(dir), port, db)
	}
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgtest.Superuser, d.shim.Addr(), db)
}

// waitDrained waits until the shipper has confirmed every stream entry (the peer committed
// everything), up to timeout.
func (d *dualShim) waitDrained(ctx context.Context, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n := d.shipper.Backlog()
		if n == 0 || time.Now().After(deadline) {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitSlotConfirmed waits until the server has the slot's confirmed position at or past the
// WAL position of now. The decoder reports its position within a second and does not report
// it when stopping, and a Shipper started later on the same slot ships again what the slot
// still holds.
func waitSlotConfirmed(ctx context.Context, local *pgtest.Cluster, timeout time.Duration) error {
	db, err := sql.Open("postgres", local.DSN(local.Database()))
	if err != nil {
		return err
	}
	defer db.Close()
	var target string
	if err := db.QueryRowContext(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		var at string
		err := db.QueryRowContext(ctx, "SELECT confirmed_flush_lsn >= $1::pg_lsn, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $2",
			target, txshim.SlotName(site)).Scan(&ok, &at)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slot %s confirmed at %s, not past %s after %v", txshim.SlotName(site), at, target, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop ends the shim and the shipper and waits for them.
func (d *dualShim) stop() error {
	d.cancel()
	d.wg.Wait()
	return errors.Join(d.errs...)
}

// timedPeer is the Shipper seen through the Peer interface, timing each Prepare: the wait for
// the decoder, for a peer connection and the apply round trip together (DESIGN §5.3 step 2).
type timedPeer struct {
	txshim.Peer
	mu   sync.Mutex
	took []time.Duration
}

func (p *timedPeer) Prepare(ctx context.Context, gid string) error {
	start := time.Now()
	err := p.Peer.Prepare(ctx, gid)
	d := time.Since(start)
	p.mu.Lock()
	p.took = append(p.took, d)
	p.mu.Unlock()
	return err
}

// summary returns the count, mean, p50 and p99 of the Prepare times so far.
func (p *timedPeer) summary() (n int, mean, p50, p99 time.Duration) {
	p.mu.Lock()
	s := slices.Clone(p.took)
	p.mu.Unlock()
	if len(s) == 0 {
		return 0, 0, 0, 0
	}
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return len(s), sum / time.Duration(len(s)), s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

// peerState describes what the peer database is doing: its prepared transactions and the
// sessions waiting for a lock, with what they wait behind. It explains a stalled peer.
func peerState(ctx context.Context, peer *pgtest.Cluster) string {
	db, err := sql.Open("postgres", peer.DSN(peer.Database()))
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	var prepared, waiting int
	var sample sql.NullString
	err = db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM pg_prepared_xacts),
  (SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'),
  (SELECT left(query, 60) || ' [blocked by pids ' || pg_blocking_pids(pid)::text || ']' FROM pg_stat_activity WHERE wait_event_type = 'Lock' LIMIT 1)`).
		Scan(&prepared, &waiting, &sample)
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("%d prepared transaction(s), %d session(s) waiting for a lock", prepared, waiting)
	if sample.Valid {
		// pid 0 among the blockers is a prepared transaction.
		s += ", e.g. " + sample.String
	}
	return s
}

// lockWatch samples the peer every interval until stopped: the most sessions seen waiting for
// a lock at once, and how many of those waited behind a prepared transaction (blocker pid 0).
type lockWatch struct {
	stop                  context.CancelFunc
	done                  chan struct{}
	maxWaiting, maxOnPrep int
	samples               int
}

func watchLocks(ctx context.Context, peer *pgtest.Cluster, interval time.Duration) *lockWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &lockWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		db, err := sql.Open("postgres", peer.DSN(peer.Database()))
		if err != nil {
			return
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var waiting, onPrep int
			err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE 0 = ANY (pg_blocking_pids(pid)))
FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&waiting, &onPrep)
			if err != nil {
				continue
			}
			w.samples++
			w.maxWaiting, w.maxOnPrep = max(w.maxWaiting, waiting), max(w.maxOnPrep, onPrep)
		}
	}()
	return w
}

// finish stops sampling and describes what was seen.
func (w *lockWatch) finish() string {
	w.stop()
	<-w.done
	return fmt.Sprintf("peer lock waits (sampled %d times): at most %d session(s) waiting at once, %d of them behind a prepared transaction",
		w.samples, w.maxWaiting, w.maxOnPrep)
}

// compareDatabases checks that local and peer hold the same pgbench data and no prepared
// transaction is left, the way the e2e test does.
func compareDatabases(ctx context.Context, local, peer *pgtest.Cluster) (string, string, error) {
	const q = `SELECT (SELECT sum(abalance) FROM pgbench_accounts)::text || '/' || (SELECT count(*) FROM pgbench_history)::text ||
	  '/' || (SELECT count(*) FROM pg_prepared_xacts)::text`
	var out [2]string
	for i, c := range []*pgtest.Cluster{local, peer} {
		db, err := sql.Open("postgres", c.DSN(c.Database()))
		if err != nil {
			return "", "", err
		}
		err = db.QueryRowContext(ctx, q).Scan(&out[i])
		db.Close()
		if err != nil {
			return "", "", err
		}
	}
	return out[0], out[1], nil
}
