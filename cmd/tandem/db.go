package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/lib/pq"

	"github.com/tandem-ha/tandem/config"
	"github.com/tandem-ha/tandem/gossip"
	"github.com/tandem-ha/tandem/txshim"
)

// database is the txshim side of a site: the shim its server talks to, the
// shipper that carries committed changes to the peer, and the mapping from
// the role to the shim's mode (DESIGN §5.1).
type database struct {
	cfg     *config.TxShim
	site    string
	witness bool // a witness is configured (majority rule)
	log     *slog.Logger
	local   *sql.DB // control connection to the local database
	peer    *sql.DB // control connection to the peer database
	shim    *txshim.Shim
	ship    *txshim.Shipper
	node    *gossip.Node // set once the node exists
	records *recordStore
	// localDown: the local database failed pingFailures pings in a row
	localDown  atomic.Bool
	resolveNow chan struct{}     // a resolver pass is wanted now (cap 1)
	splitBrain uint64            // the node's split-brain term (gossip.State.SplitBrain), under mu
	record     gossip.TermRecord // the node's term record (gossip.State.Record), under mu
	// bypass: what is left to do about the shipper's SetBypassFrom (bypassSet…, under mu;
	// see setBypass).
	bypass int

	mu       sync.Mutex
	role     gossip.Role
	term     uint64
	draining int           // drains under way (see drain): the shipper turns backup after the last
	drained  chan struct{} // closed when the last drain under way ends (stepDown waits for it)
	// peerSilent: when mayPromote last waited in vain for the peer database (under mu), which
	// the promotion that follows does not wait for as long again.
	peerSilent time.Time

	// downs counts the shim's OnPeerDown calls, under syncMu, which peerDown holds while it
	// records peer_synced = false and publishSynced while it checks and records true: a
	// catch-up publishes true only if the peer did not go down after it began.
	syncMu sync.Mutex
	downs  uint64
	// unsaid is a peer_synced = true the node could not save (its data_dir full or read-only:
	// gossip.Node.SetPeerSynced), under syncMu: the term and the downs it was said at, so that
	// a failure that lasts is logged once. catchUp says it again (sayAgain).
	unsaid *syncWord

	resolver  *txshim.Resolver
	inDoubt   atomic.Int64           // transactions the last resolver pass left in doubt
	staleSaid atomic.Pointer[string] // the refusal of a pass for a newer term last warned of (resolve)
	resyncErr string                 // the needs-resync error last logged (catchUp only)
	// fenced: the peer database's term record that fenced this master's shim (fenceByPeer),
	// shown by status while the shim stays fenced in that term.
	fenced atomic.Pointer[peerFence]
	slot   atomic.Pointer[txshim.SlotInfo] // the slot's state at the last health round that read it
	// install: what the last look at each database's install mark found (checkInstall):
	// [0] local, [1] peer; "" not read yet.
	install    [2]atomic.Pointer[txshim.InstallState]
	installing atomic.Bool // a checkInstall runs
}

// dbStatus is the txshim part of the admin status (DESIGN §6).
type dbStatus struct {
	Mode       string `json:"mode"`
	Term       uint64 `json:"term"`
	PeerSynced bool   `json:"peer_synced"`
	// Backlog is what the decoder has read that the peer lacks (Shipper.Backlog): a commit it
	// has not read yet is not counted (a large one being decoded). Status only reads: it
	// neither writes a mark to the local stream nor waits for the decoder (Shipper.Unshipped,
	// which the master's peer_synced = true waits for, sayAgain).
	Backlog     int    `json:"backlog"`
	NeedsResync string `json:"needs_resync,omitempty"`
	// FencedBy: the master's shim is fenced in its term because the peer database's term
	// record holds a newer term, or that term of another master (fenceByPeer).
	FencedBy       string `json:"fenced_by,omitempty"`
	InDoubt        int64  `json:"in_doubt"`
	SessionsActive int64  `json:"sessions_active"`
	CommitsDual    int64  `json:"commits_dual"`
	CommitsSolo    int64  `json:"commits_solo"`
	CommitsPlain   int64  `json:"commits_plain"`
	Unwrapped      int64  `json:"unwrapped"`
	PeerErrors     int64  `json:"peer_errors"`
	Refused        int64  `json:"refused"`
	LeftInDoubt    int64  `json:"left_in_doubt"`
	// The local slot (DESIGN §5.2 "the slot is the journal"): wal_status, the WAL it holds
	// back, and how much more may be written before PostgreSQL invalidates it
	// (max_slot_wal_keep_size; absent when it sets no bound). Absent until the first read.
	SlotWALStatus     string `json:"slot_wal_status,omitempty"`
	SlotRetainedBytes *int64 `json:"slot_retained_bytes,omitempty"`
	SlotSafeBytes     *int64 `json:"slot_safe_bytes,omitempty"`
	// The comparison of both databases after the last catch-up (verify_after_catchup).
	Verify *verifyStatus `json:"verify,omitempty"`
	// What the shim last read of what makes a read write or a transaction notify.
	Catalog catalogStatus `json:"catalog"`
	// Install: by database ("local", "peer"), whether tandem install of this version set it up
	// ("current", "outdated", "missing"); a database not read yet is absent.
	Install map[string]txshim.InstallState `json:"install,omitempty"`
}

// catalogStatus is a txshim.CatalogInfo in the admin status.
type catalogStatus struct {
	ReadAt             *time.Time `json:"read_at,omitempty"`
	WriterFunctions    int        `json:"writer_functions"`
	NotifyingFunctions int        `json:"notifying_functions"`
	WriterViews        []string   `json:"writer_views,omitempty"`
	NotifyTables       []string   `json:"notify_tables,omitempty"`
	Error              string     `json:"error,omitempty"`
}

// backlogWait bounds how long sayAgain waits for the decoder to read the local stream up to
// the moment of its look (Shipper.Unshipped).
const backlogWait = time.Second

// verifyStatus is a txshim.VerifyReport in the admin status.
type verifyStatus struct {
	At          time.Time `json:"at"`
	TookSeconds float64   `json:"took_seconds"`
	Identical   bool      `json:"identical"`
	Differences []string  `json:"differences,omitempty"`
	Error       string    `json:"error,omitempty"`
}

func (d *database) status() dbStatus {
	mode, term := d.shim.Mode()
	st := d.shim.Stats()
	out := dbStatus{
		Mode: mode.String(), Term: term, PeerSynced: d.ship.PeerSynced(), Backlog: d.ship.Backlog(),
		InDoubt: d.inDoubt.Load(), SessionsActive: st.SessionsActive,
		CommitsDual: st.CommitsDual, CommitsSolo: st.CommitsSolo, CommitsPlain: st.CommitsPlain,
		Unwrapped: st.Unwrapped, PeerErrors: st.PeerErrors, Refused: st.Refused, LeftInDoubt: st.LeftInDoubt,
	}
	if mode != txshim.ModeDual && mode != txshim.ModeSolo {
		// Only the master resolves (run): what its last pass as master left is the new
		// master's to settle and show.
		out.InDoubt = 0
	}
	if err := d.ship.Err(); err != nil {
		out.NeedsResync = err.Error()
	}
	out.FencedBy = d.fencedBy(mode, term)
	c := d.shim.Catalog()
	out.Catalog = catalogStatus{WriterFunctions: c.WriterFunctions, NotifyingFunctions: c.NotifyingFunctions,
		WriterViews: c.WriterViews, NotifyTables: c.NotifyTables, Error: c.Err}
	if !c.ReadAt.IsZero() {
		out.Catalog.ReadAt = &c.ReadAt
	}
	for i, side := range installSides {
		if st := d.install[i].Load(); st != nil {
			if out.Install == nil {
				out.Install = map[string]txshim.InstallState{}
			}
			out.Install[side] = *st
		}
	}
	if r, ok := d.ship.LastVerify(); ok {
		out.Verify = &verifyStatus{At: r.At, TookSeconds: r.Took.Seconds(), Identical: r.Err == nil && len(r.Diffs) == 0, Differences: r.Diffs}
		if r.Err != nil {
			out.Verify.Error = r.Err.Error()
		}
	}
	if si := d.slot.Load(); si != nil {
		out.SlotWALStatus, out.SlotRetainedBytes = si.WALStatus, &si.Retained
		if si.Bounded {
			out.SlotSafeBytes = &si.Safe
		}
	}
	return out
}

// newDatabase opens the site's databases and binds the shim's listener; on error nothing stays
// open. close releases it all when Run does not (a start-up that fails later).
func newDatabase(cfg *config.Config, logger *slog.Logger) (_ *database, err error) {
	t := cfg.TxShim
	d := &database{cfg: t, site: cfg.Site, witness: cfg.Gossip.Witness, log: logger.With("component", "txshim"), role: gossip.RoleBackup,
		bypass: bypassStartup}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.local, err = txshim.OpenDB(t.LocalDSN); err != nil {
		return nil, fmt.Errorf("local_dsn: %w", err)
	}
	if d.peer, err = txshim.OpenDB(t.PeerDSN); err != nil {
		return nil, fmt.Errorf("peer_dsn: %w", err)
	}
	for _, db := range []*sql.DB{d.local, d.peer} {
		db.SetMaxOpenConns(2)
		db.SetConnMaxIdleTime(time.Minute)
	}
	d.resolveNow = make(chan struct{}, 1)
	d.ship = txshim.NewShipper(txshim.ShipperConfig{Site: cfg.Site, LocalDSN: t.LocalDSN, PeerDSN: t.PeerDSN, Logger: d.log,
		OnPreparedBlocker: d.kickResolver, VerifyCatchUp: t.VerifyCatchUp})
	d.ship.SetBackup(true) // until promote
	d.shim, err = txshim.New(*t, txshim.Options{Logger: d.log, Site: cfg.Site, Peer: d.ship, OnPeerDown: d.peerDown, OnPeerLacks: d.peerLacks,
		OnInDoubt: d.kickResolver, Users: t.Users, TLS: shimTLS(t)})
	if err != nil {
		return nil, err
	}
	// One resolver, so that it says once, not at every pass, that a database is unreachable.
	d.resolver = txshim.NewResolver(txshim.ResolverConfig{Site: d.site, LocalDSN: t.LocalDSN, PeerDSN: t.PeerDSN, Logger: d.log,
		InFlight: d.shim.InFlight, CommitAlone: d.shim.CommitAlone})
	// A new shim starts read-only: nothing is written before the role says so.
	if err := d.shim.Start(); err != nil {
		return nil, err
	}
	return d, nil
}

// shimTLS is the TLS the shim offers its clients: txshim.tls_cert_file's pair; nil: none.
func shimTLS(t *config.TxShim) *tls.Config {
	if t.TLSCert == nil {
		return nil
	}
	return &tls.Config{Certificates: []tls.Certificate{*t.TLSCert}, MinVersion: tls.VersionTLS12}
}

// bypass states: what setBypass still has to do.
const (
	bypassSet     = iota // done
	bypassStartup        // at start: the boundary depends on the local term record
	bypassMaster         // master: nothing counts as a bypass
	bypassBackup         // this process turned the master backup: the boundary is now
)

// setBypass gives the shipper the position from which the local database's own transactions
// are writes that bypassed Tandem (txshim.Shipper.SetBypassFrom) once the site is backup, so
// that what it committed as master — alone, while the peer was away — is kept for its next
// catch-up rather than taken for a bypass: the local WAL position when this process turned
// it backup (its commits all done), or at start the position then if the local term record
// names this site as master (what the slot holds is its own backlog), else 0 (it was backup:
// what the slot holds bypassed Tandem). Until it is set, nothing counts as a bypass. It runs
// from the database health loop and tries again on the next round when the database does not
// answer.
func (d *database) setBypass(ctx context.Context) {
	d.mu.Lock()
	state := d.bypass
	d.mu.Unlock()
	if state == bypassSet || state == bypassMaster {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	var master sql.NullString
	var lsn string
	if err := d.local.QueryRowContext(qctx, `SELECT (SELECT master FROM tandem.state WHERE id = 1), pg_current_wal_lsn()::text`).Scan(&master, &lsn); err != nil {
		return
	}
	from, err := pglogrepl.ParseLSN(lsn)
	if err != nil {
		return
	}
	if state == bypassStartup && master.String != d.site {
		from = 0
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bypass != state || d.role == gossip.RoleMaster {
		return // the role changed meanwhile: the next round sees to it
	}
	d.ship.SetBypassFrom(from)
	d.bypass = bypassSet
}

// kickResolver asks the master's resolver loop for a pass now (a backup runs none).
func (d *database) kickResolver() {
	select {
	case d.resolveNow <- struct{}{}:
	default:
	}
}

// close releases the databases and the shim's listen address (which the shim's Serve has
// closed already, when it ran); it takes a database that newDatabase left half made.
func (d *database) close() {
	if d.records != nil {
		d.records.close()
	}
	if d.shim != nil {
		d.shim.Close()
	}
	if d.local != nil {
		d.local.Close()
	}
	if d.peer != nil {
		d.peer.Close()
	}
}

// The local database counts as unreachable after pingFailures pings in a row failed, each
// bounded by pingTimeout: a database that refuses connections is noticed within pingFailures
// health intervals, one that hangs within pingFailures × pingTimeout, and a busy one is not
// taken for a dead one.
const (
	pingTimeout  = time.Second
	pingFailures = 2
)

// run serves the shim and the shipper, and reports the local database's
// reachability to the node (pinging it every interval), until ctx ends.
func (d *database) run(ctx context.Context, interval time.Duration) error {
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- d.shim.Serve(ctx) }()
	go func() { defer wg.Done(); errc <- d.ship.Run(ctx) }()
	wg.Add(2)
	go func() { defer wg.Done(); d.whileMaster(ctx, 2*time.Second, nil, func(uint64) { d.catchUp(ctx) }) }()
	// Only the master resolves periodically: it alone knows which tandem_ transactions are in
	// flight (Shim.InFlight); a backup's pass could roll one back between its two PREPAREs. A
	// master that lost its role without knowing yet is one: its pass checks its term (resolve).
	// An apply held by a prepared transaction asks for a pass at once (resolveNow).
	go func() {
		defer wg.Done()
		d.whileMaster(ctx, resolveEvery, d.resolveNow, func(term uint64) { d.resolve(ctx, term) })
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	failures, round, full := 0, 0, false
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := d.local.PingContext(pctx)
		cancel()
		// A database with no connection slot free answers (53300): it is busy, not down — its
		// server's own connections fill it — and the site keeps its role.
		answered := err == nil || slotsFull(err)
		switch {
		case slotsFull(err) && !full:
			d.log.Warn("local database has no connection slot free (max_connections); counted as reachable", "err", err)
		case err == nil && full:
			d.log.Info("local database has a connection slot free again")
		}
		full = slotsFull(err)
		switch {
		case answered && failures >= pingFailures:
			d.log.Info("local database reachable again")
			failures = 0
		case answered:
			failures = 0
		default:
			if failures++; failures == pingFailures {
				d.log.Warn("local database unreachable", "failures", failures, "err", err)
			}
		}
		d.localDown.Store(failures >= pingFailures)
		if err == nil {
			d.setBypass(ctx)
			if round%slotEvery == 0 {
				d.readSlot(ctx)
			}
			if round%installEvery == 0 && d.installing.CompareAndSwap(false, true) {
				// Off the health loop: an unreachable peer must not delay the next ping.
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer d.installing.Store(false)
					d.checkInstall(ctx)
				}()
			}
		}
		round++
		if d.node != nil {
			d.node.SetDBReachable(failures < pingFailures)
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// slotsFull tells whether err is PostgreSQL's refusal of a connection for want of a free slot
// (SQLSTATE 53300 too_many_connections, also when the slots left are reserved for superusers):
// the database answered.
func slotsFull(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "53300"
}

// slotEvery: the health rounds between two reads of the slot's state (readSlot).
const slotEvery = 5

// installEvery: the health rounds between two looks at the databases' install marks.
const installEvery = 30

var installSides = [2]string{"local", "peer"}

// checkInstall reads both databases' install marks (txshim.InstallStateOf) for status, and
// says when one was not set up by this version's tandem install: after an upgrade the shim
// runs without what the new version adds (event triggers, functions) until it is run again.
// A database that does not answer keeps what was last read.
func (d *database) checkInstall(ctx context.Context) {
	for i, db := range [2]*sql.DB{d.local, d.peer} {
		qctx, cancel := context.WithTimeout(ctx, pingTimeout)
		st, err := txshim.InstallStateOf(qctx, db)
		cancel()
		if err != nil {
			d.log.Debug("cannot read the install mark", "database", installSides[i], "err", err)
			continue
		}
		old := d.install[i].Swap(&st)
		if old != nil && *old == st {
			continue
		}
		switch {
		case st == txshim.InstallOutdated:
			d.log.Warn("the database was set up by another version of tandem install: run tandem install (on both sites) to add what this version needs",
				"database", installSides[i])
		case st == txshim.InstallMissing:
			d.log.Error("the database has no tandem schema: run tandem install", "database", installSides[i])
		case old != nil:
			d.log.Info("the database is set up by this version of tandem install now", "database", installSides[i])
		}
	}
}

// readSlot reads the local slot's state for status and metrics, and warns once when the WAL
// it holds back passes half of what max_slot_wal_keep_size allows: past it PostgreSQL
// invalidates the slot and the peer needs resync.
func (d *database) readSlot(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	si, err := txshim.ReadSlot(qctx, d.local, txshim.SlotName(d.site))
	if err != nil {
		d.log.Debug("cannot read the slot's state", "err", err)
		return
	}
	old := d.slot.Swap(&si)
	half := func(si *txshim.SlotInfo) bool { return si != nil && si.Bounded && si.Safe < si.Retained }
	if half(&si) && !half(old) {
		d.log.Warn("the replication slot holds back more than half the WAL max_slot_wal_keep_size allows: "+
			"if the peer stays away, PostgreSQL invalidates the slot and the peer needs resync",
			"retained_bytes", si.Retained, "safe_bytes", si.Safe, "wal_status", si.WALStatus)
	}
}

// promote readies the shim for the master role of term before the node
// publishes it (gossip.Options.BeforePromote): in-doubt transactions are
// resolved (DESIGN §5.4); sequences move past every value in use (§5.2); the
// term goes into the peer's database, its sequences' positions are copied here, so an old master can no longer apply
// there (§3 fencing); the peer is caught up (§5.5) and the shim turns dual —
// or, when the peer is unreachable or still behind, solo while catch-up goes
// on in the background (with peer_down = "block" dual all the same: its
// commits fail until the peer is in step).
func (d *database) promote(ctx context.Context, term uint64) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// None of this process's own transactions can be in flight: the shim
	// was not writable. A peer database that accepts connections and then hangs counts as
	// unreachable after 2 s here, not the resolver's longer start-up bound for slow links: the
	// takeover waits for this pass.
	// Not as long again for a peer database the check before the term (mayPromote) has just
	// waited for in vain: the takeover after the loss of a whole site would wait for it twice.
	wait := 2 * time.Second
	if !d.peerSilent.IsZero() && time.Since(d.peerSilent) < 10*time.Second {
		wait = 250 * time.Millisecond
	}
	d.peerSilent = time.Time{}
	rep := d.resolve(txshim.WithStartupTimeout(ctx, wait), term)
	if err := txshim.BumpSequences(ctx, d.cfg.LocalDSN); err != nil {
		return false, fmt.Errorf("move sequences past the values in use: %w", err)
	}
	d.ship.SetTerm(term)
	d.ship.SetBackup(false)
	d.role, d.term, d.bypass = gossip.RoleMaster, term, bypassMaster
	var err error
	if rep.PeerUnreachable {
		// The pass just waited for it in vain: a peer database that hangs (rather than
		// refusing connections) would hold the takeover as long again. As with a peer
		// database that is down, the term reaches it later, in the record its own
		// sidecar adopts; this site's database holds it already (the node saved it).
		err = errors.New("the resolver could not reach the peer database")
	} else {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		// Who was master before: the peer database's record, read before this term replaces it.
		pterm, pmaster, _, rerr := txshim.ReadTermRecord(wctx, d.peer)
		err = txshim.WriteTermRecord(wctx, d.peer, term, d.site, d.ship.PeerSynced())
		cancel()
		if errors.Is(err, txshim.ErrStaleTerm) {
			// DESIGN §3 fencing in the databases: the peer's database holds a newer term, or
			// this one of another master — one the gossip does not show (a cut link between
			// the sites, the databases' link up). Gone solo, this site would commit alone in
			// the same term beside it, which the local term check does not stop; the
			// promotion fails instead.
			return false, fmt.Errorf("the peer database refuses term %d: %w", term, err)
		}
		// The peer's database is the old master's: its sequences are where it left them,
		// while the copies of their positions here may lag (the last periodic one, or none
		// since catch-up), and BumpSequences moves only those a column takes values from.
		// A sequence behind the peer's moves up to it (DESIGN §5.2: never behind on a new
		// master); this runs before the shim takes writes. Only from an old master's
		// database, which answered the term write: where this site was master of the
		// peer's last term, or of a newer one it served alone (its record unsynced; a
		// promotion that failed before the term write leaves it synced), the peer's positions
		// are copies of this site's, behind them, and a CYCLE sequence takes a copy's
		// position exactly — back onto values this site handed out.
		ownLast := d.record.Master == d.site && d.record.Term > pterm && !d.record.PeerSynced
		if err == nil && rerr == nil && pmaster != d.site && !ownLast {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if aerr := txshim.AlignSequences(actx, d.cfg.PeerDSN, d.cfg.LocalDSN); aerr != nil {
				d.log.Warn("could not copy the peer database's sequence positions at promotion", "term", term, "err", aerr)
			}
			cancel()
		}
	}
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, promoteCatchUp)
		err = d.ship.CatchUp(cctx, d.hold)
		cancel()
	}
	if err == nil && d.ship.PeerSynced() {
		d.shim.SetMode(txshim.ModeDual, term)
		return true, nil
	}
	// The shim goes dual all the same, with the Shipper down (one just started counts itself
	// in step, and a commit would wait, up to decodeLagMax, for what came before it to reach
	// a peer that does not take it). With peer_down = "block" a master never commits alone:
	// its commits fail (08007) until the peer is in step, which catchUp sees to, as after a
	// failed dual commit. Otherwise the first commit, refused by the Shipper, goes solo as one
	// in a dual term does (OnPeerDown, peerDown): once the other site's sidecar or the witness
	// holds this term's record unsynced (DESIGN §3 "going solo is announced first"). Set solo
	// here, the shim committed alone before anyone held that record: with the new master's
	// site lost right after, the old master — back, finding no newer term anywhere — took over
	// without those commits.
	d.ship.Down("promotion", cmp.Or(err, errors.New("the peer database is not in step")))
	if d.cfg.PeerDown == config.PeerDownBlock {
		d.log.Warn("peer database not in step at promotion: commits fail until catch-up (peer_down = block)", "term", term, "err", err)
	} else {
		d.log.Warn("peer database not in step at promotion: the first commit goes solo once that is acknowledged; catch-up goes on", "term", term, "err", err)
	}
	// The node saved this term's record (as synced, unless its last term left the peer
	// lacking commits) and saves it unsynced once this returns;
	// the shim takes writes from SetMode on. A crash in between would leave a record that
	// lets the peer promote over solo commits (DESIGN §3 rule 2): say it first.
	if d.records != nil {
		if err := d.records.Save(gossip.TermRecord{Term: term, Master: d.site, PeerSynced: false}); err != nil {
			return false, fmt.Errorf("record peer_synced = false before taking writes: %w", err)
		}
	}
	d.shim.SetMode(txshim.ModeDual, term)
	return false, nil
}

// mayPromote is the node's check before it takes term (gossip.Options.CheckPromote): the peer
// database's term record may show what the gossip did not carry here — that its site, master
// of the newest term this site knows of, went on alone (unacknowledged: no one alive to tell,
// and its sidecar died before this one heard). This site's database lacks what it committed
// then, and taking over would lose commits its clients saw (DESIGN §3 rule 2); it waits for
// that site, unless an operator accepted the loss (tandem promote -accept-loss). So too for an
// older term of that site's that this site's own term was not taken over (gossip.PeerSoloLost:
// both went on alone, that site in a term it took after this site's, not knowing of it). A peer
// database that does not answer tells nothing.
func (d *database) mayPromote(ctx context.Context, term uint64) error {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	pterm, pmaster, psynced, err := txshim.ReadTermRecord(rctx, d.peer)
	// Silent: the wait ran out. Not only rctx.Err(): the connection's own deadline (the
	// context's, given to the dialer and the socket) can fire a moment before the context's
	// timer marks it done, and the error then is a plain i/o timeout.
	deadline, _ := rctx.Deadline()
	silent := err != nil && (rctx.Err() != nil || !time.Now().Before(deadline))
	cancel()
	d.mu.Lock()
	own := d.record
	if silent {
		d.peerSilent = time.Now()
	}
	d.mu.Unlock()
	if err != nil {
		return nil
	}
	var over uint64
	if d.node != nil {
		over = d.node.TookOver(own.Term)
	}
	peer := gossip.TermRecord{Term: pterm, Master: pmaster, PeerSynced: psynced}
	if !gossip.PeerSoloLost(d.site, own, over, peer) || (d.node != nil && d.node.AcceptedLoss() == pterm) {
		return nil
	}
	if pterm < own.Term {
		// This site took its term over an older record than pterm (PeerSoloLost): that site
		// took pterm later, not knowing of this site's term, and went on alone in it.
		taken := fmt.Sprintf("taken over term %d", over)
		if over == 0 {
			taken = "what it was taken over is not known here"
		}
		return &gossip.PromoteRefusal{Record: gossip.TermRecord{Term: pterm, Master: pmaster},
			Err: fmt.Errorf("the peer database's term record says %s, master of term %d, went on alone in it, a term this site's term %d did not take over (%s): "+
				"both sites went on alone (split brain), and this site's database lacks what %s committed then; compare the databases (tandem verify), then, to go on without those commits, tandem promote -accept-loss %d",
				pmaster, pterm, own.Term, taken, pmaster, pterm)}
	}
	// The node takes the record as its own when it is newer than the one it holds (a term the
	// gossip never carried here), and so the operator's -accept-loss of that term.
	return &gossip.PromoteRefusal{Record: gossip.TermRecord{Term: pterm, Master: pmaster},
		Err: fmt.Errorf("the peer database's term record says %s, master of term %d, went on alone: this site's database lacks what it committed then (if that site is lost for good, tandem promote -accept-loss %d)",
			pmaster, pterm, pterm)}
}

// promoteCatchUp bounds the catch-up a promotion waits for; a longer backlog
// is shipped while the new master serves alone.
const promoteCatchUp = 5 * time.Second

// hold is CatchUp's pause of new commits while it ships the tail (DESIGN
// §5.5), so that peer_synced = true is published only when the peer holds
// every commit a client saw. Waiting for the commits in flight is bounded;
// catch-up tries again later when it runs out.
func (d *database) hold(ctx context.Context) (func(), error) {
	hctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	release, err := d.shim.HoldCommits(hctx)
	if err != nil {
		return nil, err
	}
	return func() {
		// The peer has everything: commits held now go dual, none of them solo.
		if d.ship.PeerSynced() {
			if _, term := d.shim.Mode(); d.shim.SwitchMode(txshim.ModeSolo, txshim.ModeDual, term) {
				d.log.Info("peer caught up: dual mode", "term", term)
			}
		}
		release()
	}, nil
}

// holdTimeout bounds the wait for the commits in flight when catch-up holds
// new ones.
const holdTimeout = 5 * time.Second

// whileMaster calls f every period until ctx ends, on the rounds this site is master, with
// the term it is master of.
func (d *database) whileMaster(ctx context.Context, every time.Duration, kick <-chan struct{}, f func(term uint64)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-kick:
		}
		d.mu.Lock()
		master, term := d.role == gossip.RoleMaster, d.term
		d.mu.Unlock()
		if master {
			f(term)
		}
	}
}

// catchUp tries to bring the peer in step while this master is in solo mode, or in dual mode
// with the peer not in step — with peer_down = "block" a master never goes solo, and its
// Shipper, down since the peer failed a commit, would otherwise ship nothing again: every dual
// commit refused, and what committed plainly never shipped. Once the peer is in step, the
// shim is dual (hold's release) and peer_synced is published.
func (d *database) catchUp(ctx context.Context) {
	mode, term := d.shim.Mode()
	if mode != txshim.ModeSolo && (mode != txshim.ModeDual || d.ship.PeerSynced()) {
		if mode == txshim.ModeDual {
			d.sayAgain(ctx, term)
		}
		return
	}
	// A peer database that comes back may hold transactions prepared by the previous master
	// (of the peer's own site, say): their row locks would stall the catch-up until the next
	// periodic pass, so settle them first — and wait for the next round while this pass cannot
	// reach the peer (it may be starting up).
	if rep := d.resolve(ctx, term); rep.PeerUnreachable {
		return
	}
	if d.fenceByPeer(ctx, term) {
		return
	}
	// The mode read above may be stale by now: the resolver's pass and the look at the peer's
	// term record take round trips, and a resync may have brought the peer in step meanwhile.
	// A catch-up then only takes the peer out of step for its run: status said peer_synced
	// false right after tandem resync said dual commit resumed (TestResync, CI's ci206).
	if m, t := d.shim.Mode(); m != mode || t != term || (m == txshim.ModeDual && d.ship.PeerSynced()) {
		return
	}
	gen := d.peerDowns()
	if mode == txshim.ModeSolo {
		// The shim commits alone, and what it committed may not be on the peer yet — shipped as
		// it comes, or not decoded — though the Shipper may still count the peer in step: a
		// plain commit in dual mode whose reply could not mark the stream goes on alone without
		// taking the Shipper down (txshim awaitShipped). CatchUp found it synced then and
		// returned at once, and the shim went dual, peer_synced = true said, with a commit a
		// client saw not on the peer (TestSoloCatchUpHolds). The shim turns dual only in hold's
		// release, after a catch-up that held commits and shipped the tail.
		d.ship.Unsync()
	}
	if err := d.ship.CatchUp(ctx, d.hold); err != nil || !d.ship.PeerSynced() {
		if errors.Is(err, txshim.ErrNeedsResync) && err.Error() != d.resyncErr {
			// Once, not every round: shipping stopped for good (status needs_resync).
			d.resyncErr = err.Error()
			d.log.Error("the peer database needs resync (tandem resync); the master goes on alone", "err", err, "backlog", d.ship.Backlog())
		}
		// Refused for the term, say: the successor's term reached the peer database since
		// the look before.
		if err != nil && !d.fenceByPeer(ctx, term) {
			d.log.Debug("catch-up not done", "err", err, "backlog", d.ship.Backlog())
		}
		return
	}
	d.publishSynced(term, gen)
}

// peerFence is a term record of the peer database that fenced this master (fenceByPeer).
type peerFence struct {
	term       uint64 // the master's own term, the shim fenced in it
	peerTerm   uint64
	peerMaster string
}

func (f *peerFence) String() string {
	return fmt.Sprintf("the peer database holds term %d of %s (this site master of term %d): %s", f.peerTerm, f.peerMaster, f.term, f.wayOut())
}

// wayOut says how this master's fence ends. A newer term there: the gossip makes this site step
// down once it sees that term's master (decideMaster), and that site goes on. Its own term of
// another master (both sites took it, cut off from each other): nothing ends it by itself —
// the gossip keeps this site master of the term once the other stepped down (a master is
// released only for a newer term), automatic failback stops for the split brain (DESIGN §3),
// and the fence holds for as long as the term does. An operator chooses which database is
// kept (DESIGN §3: no commit a client saw is lost without an operator's word): tandem
// switchover here releases the term, and the site whose database is kept takes the next one —
// refused, as long as the other database holds the other's record of the term (mayPromote),
// until tandem promote -accept-loss of the term there (TestFencedByPeerWayOut).
func (f *peerFence) wayOut() string {
	if f.peerTerm > f.term {
		return fmt.Sprintf("%s took a newer term; this site steps down once it sees that site", f.peerMaster)
	}
	return fmt.Sprintf("both sites took term %d (split brain) and this master takes no writes in it again; "+
		"compare the databases (tandem verify), then run tandem switchover here, which releases the term, "+
		"and have the site whose database is kept take the next term (tandem promote -accept-loss %d there, "+
		"as its promotion is refused for the other site's record of term %d)", f.term, f.term, f.term)
}

// fencedBy says why the shim, in mode in term, is fenced by the peer database's term record
// (fenceByPeer), or "" when it is not fenced so.
func (d *database) fencedBy(mode txshim.Mode, term uint64) string {
	if f := d.fenced.Load(); f != nil && mode == txshim.ModeFenced && term == f.term {
		return f.String()
	}
	return ""
}

// fenceByPeer fences the shim of this master of term when the peer database's term record
// holds a newer term, or term of another master: its successor took over across a cut link
// and touched the peer database only (DESIGN §3: a master cut off cannot commit once its
// successor has touched either database). The commit path's term checks see only the local
// database in solo mode, whose record still names this site: a solo master whose catch-up the
// peer refused for the term went on committing alone beside the successor, and one in dual
// mode went solo after its next failed commit (TestSoloMasterFencedByPeerTerm). Fenced, the
// shim refuses every write commit (25006) and new sessions; the role stays the node's to
// change (the gossip's split-brain handling once the sites see each other), and a newer
// term this site takes sets the shim's mode anew. It reports whether the shim is fenced so.
// A peer database that does not answer tells nothing.
func (d *database) fenceByPeer(ctx context.Context, term uint64) bool {
	rctx, cancel := context.WithTimeout(ctx, recordTimeout)
	pterm, pmaster, _, err := txshim.ReadTermRecord(rctx, d.peer)
	cancel()
	if err != nil || pterm < term || (pterm == term && (pmaster == "" || pmaster == d.site)) {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.role != gossip.RoleMaster || d.term != term {
		return false
	}
	f := &peerFence{term: term, peerTerm: pterm, peerMaster: pmaster}
	// What the clients the shim refuses are told: this site is the master (the gossip's;
	// /master answers 503 here while fenced), there is no other to connect to.
	why := fmt.Sprintf("master of term %d, but the peer database holds term %d of %s (split brain): it takes no writes (tandem status shows txshim fenced_by)",
		term, pterm, pmaster)
	for _, m := range []txshim.Mode{txshim.ModeSolo, txshim.ModeDual} {
		if d.shim.Fence(m, term, why) {
			d.fenced.Store(f)
			d.log.Error("fenced: the peer database holds a newer term, or this one of another master, taken while this site was cut off (split brain): "+
				"this master commits nothing more in its term; "+f.wayOut(),
				"term", term, "peer_term", pterm, "peer_master", pmaster, "was", m.String())
			return true
		}
	}
	return false
}

// peerDowns returns how often the peer was found down so far (see downs).
func (d *database) peerDowns() uint64 {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	return d.downs
}

// publishSynced publishes peer_synced = true if this site is still master of term and the
// peer was not found down since the catch-up (or resync) that began when downs was gen. A
// dual commit that failed after the catch-up has recorded false, and its site may be going
// solo: true would let the peer take control without what is committed alone (DESIGN §3).
// The next catch-up publishes it then.
func (d *database) publishSynced(term, gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	again := d.unsaid != nil && *d.unsaid == syncWord{term, gen}
	if !d.maySayInSync(term, gen) {
		d.unsaid = nil
		d.log.Info("not publishing peer_synced: the peer went down after the catch-up began, or the role changed", "term", term)
		return
	}
	if d.node != nil {
		if err := d.node.SetPeerSynced(true); err != nil {
			if !again {
				d.log.Warn("cannot publish peer_synced; tried again while the peer stays in step", "term", term, "err", err)
			}
			d.unsaid = &syncWord{term, gen}
			return
		}
	}
	if again {
		d.log.Info("peer_synced published after all", "term", term)
	}
	d.unsaid = nil
	// The peer has everything: a commit it lacked before (txshim peerLacks, the shim dual
	// throughout) no longer counts the term as committed alone in, which a handover takes for
	// peer_synced = false recorded already (Barrier, DrainRanOut).
	d.shim.PeerHasAll(term)
}

// syncWord is a peer_synced = true not said yet (database.unsaid).
type syncWord struct{ term, gen uint64 }

// sayAgain publishes the peer_synced = true of term that a catch-up could not say, while the
// shim is dual in term and the Shipper in step with nothing left to ship, and the record still
// says the peer lacks commits. No catch-up runs again then, so the word would otherwise be
// missing for good — the other site never taking over from a lost master — when the catch-up's
// own word could not be saved (data_dir full or read-only for a moment: unsaid), or was
// refused because the peer was found down while it ran: commits during a resync's copy, or
// during the catch-up of a dual shim, find the peer not in step and go solo, and the catch-up
// then ships them and turns the shim dual (TestResyncUnderLoadSaysPeerSynced). The peer-downs
// are read before the look, and publishSynced checks that the peer was not found down since:
// every commit made before the look is on the peer, and one that fails after it records false.
func (d *database) sayAgain(ctx context.Context, term uint64) {
	if d.node == nil {
		return
	}
	gen := d.peerDowns()
	if mode, t := d.shim.Mode(); mode != txshim.ModeDual || t != term || !d.ship.PeerSynced() || d.ship.Backlog() != 0 {
		return
	}
	if rec := d.node.State().Record; rec.Term != term || rec.Master != d.site || rec.PeerSynced {
		return // said already, or not this site's record of term
	}
	// Backlog counts what the decoder has read: a commit made before the look that it has not
	// read yet (a plain commit whose mark failed, peerLacks) is on the peer only once Unshipped
	// says 0 too.
	uctx, cancel := context.WithTimeout(ctx, backlogWait)
	n, err := d.ship.Unshipped(uctx, d.local)
	cancel()
	if err != nil || n != 0 {
		return
	}
	d.publishSynced(term, gen)
}

// maySayInSync is publishSynced's rule; d.mu and d.syncMu are held.
func (d *database) maySayInSync(term, gen uint64) bool {
	return d.role == gossip.RoleMaster && d.term == term && d.downs == gen
}

// attach gives the database its node, and the node's State at start: the node delivers only
// changes (Changes), and a site that waits at cold start delivers none for as long as it
// waits. A split brain its data_dir remembers (a restart after one, kill -9 or not) must not
// wait for that: as a backup it gives up shipping what it committed alone (abandonLocked), or
// its slot holds that WAL throughout.
func (d *database) attach(node *gossip.Node) {
	d.node = node
	d.setRole(node.State())
}

// setRole maps every other role to the shim's mode (DESIGN §5.1): backup →
// read-only, fenced → fenced. The master's mode is set by promote.
func (d *database) setRole(st gossip.State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setRoleLocked(st)
}

// setRoleLocked is setRole with d.mu held.
func (d *database) setRoleLocked(st gossip.State) {
	if d.role == gossip.RoleMaster && st.Term < d.term {
		// A State from before promote made this site master of d.term: route read it, then
		// waited for d.mu while promote held it. The node's term only grows, and it publishes
		// the term of every promotion it starts, a failed one too, so this State is stale;
		// applied, it would put the new master's shim read-only, and the master State that
		// follows would leave it so.
		return
	}
	d.splitBrain, d.record = st.SplitBrain, st.Record
	if st.Role == d.role && st.Term == d.term {
		if d.draining == 0 && st.Role != gossip.RoleMaster {
			d.abandonLocked()
		}
		return
	}
	wasMaster := d.role == gossip.RoleMaster
	d.role, d.term = st.Role, st.Term
	switch st.Role {
	case gossip.RoleMaster:
		// promote has already run for this term.
		return
	case gossip.RoleFenced:
		d.shim.SetMode(txshim.ModeFenced, st.Term)
	default:
		d.shim.SetMode(txshim.ModeReadOnly, st.Term)
	}
	if wasMaster || d.draining > 0 {
		// Commits in flight still ship their changes to the peer: the shipper turns backup
		// once they are done (a release waits for that in beforeRelease, stepDown). A
		// release's drain ends at the shim's barrier (see drain).
		if d.draining == 0 {
			d.drained = make(chan struct{})
		}
		d.draining++
		go d.drain(context.Background(), wasMaster && st.Role == gossip.RoleBackup && st.Releasing == st.Term && !newerMaster(st))
		return
	}
	d.turnBackupLocked()
}

// turnBackupLocked makes the shipper a backup's, whose position from which its own
// transactions bypassed Tandem setBypass finds next (unless it is known from start).
func (d *database) turnBackupLocked() {
	d.ship.SetBackup(true)
	if d.bypass == bypassMaster {
		d.bypass = bypassBackup
	}
	d.abandonLocked()
}

// abandonLocked, on a site that is not master and is in split brain (DESIGN §3: it committed
// alone in a term after which the other site took a newer one), gives up shipping what it
// committed alone: shipped into the newer term's database later, those writes would land
// after, and over, that master's. They stay in this site's database only, for the operator
// who settles the split brain (tandem verify names the difference; tandem resync on the
// master overwrites them).
func (d *database) abandonLocked() {
	if d.splitBrain == 0 {
		return
	}
	if d.record.Master == d.site && d.record.Term > d.splitBrain {
		// This site has been master of a newer term since (a switchover to it, or a failover,
		// with the mark still set): what it committed alone in the split-brain term was given
		// up when it learned of that (as backup, or at its start), and what is left to ship
		// now is its later term's — committed alone while the peer was away, and owed to the
		// peer like any master's.
		return
	}
	if n := d.ship.Abandon(); n > 0 {
		d.log.Error("split brain: transactions committed alone here will not be shipped; they are in this site's database only",
			"transactions", n, "term", d.splitBrain)
	}
}

// newerMaster tells whether st shows another member master of a term after st's: a master
// that releases to it (its process paused, say, while that member took over) hands over to
// nobody, and its barrier (drain) would fail on a peer database that refuses its term.
func newerMaster(st gossip.State) bool {
	for _, m := range st.Members {
		if m.Site != st.Self && gossip.Role(m.Role) == gossip.RoleMaster && m.Term > st.Term {
			return true
		}
	}
	return false
}

// stepDown is the shim's part of a handover (DESIGN §3) before the release of term is
// published: no new commits, the commits in flight finished, and the peer has every plain
// commit (or peer_synced = false is recorded): it waits for the drain the demotion started
// (setRole — here, or already by route, with the node's State of the release).
func (d *database) stepDown(ctx context.Context, term uint64) {
	d.mu.Lock()
	// The node's record and split-brain mark as the last State routed gave them: this State is
	// no node's, and its empty ones would stand until the next State is delivered — a promotion
	// before that (a release to nobody, then this site promoted again) would no longer know
	// that this site's own unsynced term was the last (promote's ownLast).
	d.setRoleLocked(gossip.State{Role: gossip.RoleBackup, Term: term, Releasing: term, Record: d.record, SplitBrain: d.splitBrain})
	done := d.drained
	d.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// drain waits (bounded) until the shim has no commit in flight and, with barrier (the
// drain of a master's release), the peer has every plain commit so far (the shim's barrier),
// then, the last drain, turns the shipper backup unless this site is master again. What is
// still in flight when the bound runs out the shim ends within it (txshim.Shim.Drain: the
// sessions' backends terminated, what they had not committed rolled back; a transaction they
// had prepared is left to the next master's resolver), so that nothing commits on the local
// database after the release, and the barrier then runs in barrierReserve kept for it: what
// ran until then (a procedure's earlier commits) is in the stream before its mark. A release's
// drain that could not end what was in flight records peer_synced = false first
// (txshim.Shim.DrainRanOut). The caller counted it in d.draining (setRole).
//
// Only a release to a successor that has not taken a newer term yet waits at the barrier: its
// "released" is what the successor takes the next term on, and it can say peer_synced = false
// in time. A master fenced, or demoted by a newer term it finds (its process was paused, say:
// a release too, newerMaster), is past that: the other site took or takes
// the role without hearing it, and its barrier would fail on a peer link that is down or a
// peer database that refuses its term, counting the term as one committed alone in though
// nothing was — a split brain reported, and failback to this site stopped, for in-doubt dual
// commits the resolver settles on both databases.
func (d *database) drain(ctx context.Context, barrier bool) {
	d.mu.Lock()
	term := d.term
	d.mu.Unlock()
	if d.localDown.Load() {
		// Commits in flight wait for the local database and cannot finish while it does not
		// answer; whatever they left prepared, fencing and the next master's resolver settle.
		d.log.Warn("handover: the local database does not answer; not waiting for commits in flight")
	} else {
		// As long as a commit may wait for the peer (a decoder behind, a plain commit queued
		// before it): one whose wait fails records peer_synced = false before "released" goes.
		// Drain ends what is still in flight at the end of its wait, which leaves the barrier
		// barrierReserve of the bound.
		bound := drainBound(d.cfg.CommitTimeout)
		dctx, cancel := context.WithTimeout(ctx, bound)
		wctx, wcancel := context.WithTimeout(dctx, bound-min(barrierReserve, bound/2))
		err := d.shim.Drain(wctx)
		wcancel()
		ended := errors.Is(err, txshim.ErrDrainEnded)
		switch {
		case err != nil && !ended:
			d.log.Warn("handover: commits still in flight past the drain's bound, not all ended; the next master's resolver finishes those left prepared", "err", err)
			if barrier {
				// What is still in flight (a procedure, a plain commit) may commit after the
				// release, which the shipper, turned backup, does not ship: peer_synced =
				// false goes out before "released".
				d.shim.DrainRanOut(term)
			}
		case err != nil:
			// Ended: nothing of it commits any more, and the barrier below finds whether the
			// peer has what it committed before (a procedure's earlier transactions). A long
			// read that the drain ended so does not keep the other site from taking over.
			d.log.Warn("handover: what was still in flight past the drain's bound was ended (rolled back); the next master's resolver finishes those left prepared", "err", err)
		}
		if err != nil && !ended || !barrier {
			// Not a release (above), or a second drain: the first has the barrier.
		} else if err := d.shim.Barrier(dctx, term); err != nil {
			// A write committed plainly whose reply did not wait for the peer (an autocommit
			// statement the shim took for a read) may be unshipped: the shipper is still the
			// master's, so the slot keeps it, and peer_synced = false goes out before
			// "released" (the shim's OnPeerDown, peerDown), so that the successor catches up
			// from here rather than taking the term without it. Within what is left of the
			// drain's bound, and so of systemd's TimeoutStopSec.
			d.log.Warn("handover: the peer may lack a commit made before it; peer_synced = false recorded", "term", term, "err", err)
		}
		cancel()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining--
	if d.draining > 0 {
		return
	}
	close(d.drained)
	d.drained = nil
	if d.role != gossip.RoleMaster {
		d.turnBackupLocked()
	}
}

// drainBound is how long a handover's drain takes at most: it waits for the commits in flight
// as long as a commit may wait for the peer and drainMargin, ends what is still in flight then
// (txshim.DrainEnd), and keeps barrierReserve for the barrier. A variable for the tests, which
// would otherwise wait it out (42 s).
var drainBound = func(commitTimeout time.Duration) time.Duration {
	return txshim.CommitWaitMax(commitTimeout) + drainMargin + txshim.DrainEnd + barrierReserve
}

// barrierReserve is what a drain keeps of its bound for the barrier, once the shim ended what
// was still in flight (at most half the bound: the tests' short ones).
const barrierReserve = 3 * time.Second

// drainMargin is what a drain waits beyond a commit's longest wait for the peer
// (txshim.CommitWaitMax): its local PREPARE and COMMIT PREPARED are not bounded by it. The
// shim's Drain keeps the end of it to end what is still in flight then.
const drainMargin = 5 * time.Second

// resolve runs one pass of the resolver (DESIGN §5.4) as master of term, logs what it did,
// and returns its report (what it did before any failure). A pass that finds a newer master's
// term or transactions settles nothing (txshim.Resolver.ResolveInTerm): this site lost its role
// without knowing yet, and the gossip tells it soon.
func (d *database) resolve(ctx context.Context, term uint64) txshim.Report {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	rep, err := d.resolver.ResolveInTerm(rctx, term)
	if err != nil {
		// A refusal for a newer term lasts as long as this site takes itself for master of
		// term: catch-up passes come every 2 s while the shim is solo. Warned of once.
		msg := err.Error()
		if !errors.Is(err, txshim.ErrStaleTerm) {
			d.staleSaid.Store(nil)
		} else if old := d.staleSaid.Swap(&msg); old != nil && *old == msg {
			d.log.Debug("resolver pass refused again", "err", err)
			return rep
		}
		d.log.Warn("resolver pass failed", "err", err)
		return rep
	}
	d.staleSaid.Store(nil)
	before := d.inDoubt.Swap(int64(len(rep.InDoubt)))
	if len(rep.Committed)+len(rep.RolledBack) > 0 || int64(len(rep.InDoubt)) != before {
		d.log.Info("resolved in-doubt transactions", "committed", len(rep.Committed), "rolled_back", len(rep.RolledBack), "in_doubt", len(rep.InDoubt))
	}
	return rep
}

// resync re-seeds the peer database from this master's (DESIGN §5.5, see
// txshim.Shipper.Resync): new commits are held while it takes its snapshot,
// go on alone while the application tables are copied, and are caught up
// after; then the shim goes dual and peer_synced = true is published.
func (d *database) resync(ctx context.Context) error {
	d.mu.Lock()
	master, term := d.role == gossip.RoleMaster, d.term
	d.mu.Unlock()
	if !master {
		return errors.New("resync runs on the master only")
	}
	d.log.Warn("resync: copying the application tables to the peer database; commits go on alone meanwhile", "term", term)
	gen := d.peerDowns()
	if err := d.ship.Resync(ctx, d.hold); err != nil {
		return err
	}
	// A peer database restored from a backup or re-initialised (README: install, then resync)
	// lost this term's record with its data: the copy brings the data back, this the term — the
	// database's fence (DESIGN §3), and what the peer's sidecar, which saw it hold the term,
	// looks for before it saves a term of its own there (recordStore.Save).
	wctx, cancel := context.WithTimeout(ctx, recordTimeout)
	err := txshim.WriteTermRecord(wctx, d.peer, term, d.site, d.ship.PeerSynced())
	cancel()
	if err != nil {
		d.log.Warn("resync: the term record was not written into the peer database", "term", term, "err", err)
	}
	d.publishSynced(term, gen)
	return nil
}

// resolveEvery is the period of the master's resolver passes (DESIGN §5.4: at promotion and
// periodically).
const resolveEvery = 30 * time.Second

// peerDown is the shim's OnPeerDown: the term record says the peer lacks what follows (DESIGN
// §3, §5.3), and the master goes on alone once that is acknowledged. It reports whether the
// shim may go solo.
func (d *database) peerDown() bool {
	err := d.recordPeerLacks()
	if d.node == nil {
		return true
	}
	if err != nil {
		d.log.Error("cannot record peer_synced = false; not going solo", "err", err)
		return false
	}
	d.mu.Lock()
	master := d.role == gossip.RoleMaster
	d.mu.Unlock()
	if !master || (d.cfg != nil && d.cfg.PeerDown == config.PeerDownBlock) {
		// A commit the peer lacks (txshim: a plain one it did not take) with peer_down =
		// "block", where the master never goes solo, or one that finished while this site
		// releases its role (the word goes out before "released"): nothing goes solo, so
		// there is no acknowledgement to wait for.
		d.log.Warn("peer_synced = false recorded: the peer lacks a commit until catch-up", "master", master)
		return false
	}
	// Going solo is announced first (DESIGN §3): the first solo commit waits until the other
	// site's sidecar (or the witness) holds the record, so it will not promote over it.
	ctx, cancel := context.WithTimeout(context.Background(), soloAckTimeout)
	defer cancel()
	start := time.Now()
	acked, err := d.node.AwaitRecord(ctx)
	ok := soloAllowed(acked, err == nil, d.witness)
	switch {
	case acked:
		d.log.Info("going solo: peer_synced = false acknowledged", "waited", time.Since(start).Round(time.Millisecond))
	case !ok && err != nil:
		d.log.Error("not going solo: a member is alive but did not acknowledge peer_synced = false in time; commits wait for the peer or stay in doubt",
			"waited", soloAckTimeout)
	case !ok:
		d.log.Error("not going solo: neither the other site's sidecar nor the witness is alive, so this site has lost its majority and is about to be fenced; commits stay in doubt")
	default:
		d.log.Warn("going solo unacknowledged: the other site's sidecar is not alive and there is no witness (if that site is up, this is split brain)")
	}
	return ok
}

// peerLacks is the shim's OnPeerLacks: a commit made on this site's database that the peer did
// not take, where the shim does not go solo (peer_down = "block", a handover under way, the
// peer database's refusal of this master's term). The term record says the peer lacks it
// (DESIGN §3 rule 2: the other site must not take over without it), and that is all: nothing
// commits alone after it, so there is no going solo to announce, nor an acknowledgement to
// wait for before the client's answer (TestPlainRefusedForTermNoSoloWait).
func (d *database) peerLacks() {
	if err := d.recordPeerLacks(); err != nil {
		d.log.Error("cannot record peer_synced = false: the peer lacks a commit", "err", err)
		return
	}
	if d.node != nil {
		d.log.Warn("peer_synced = false recorded: the peer lacks a commit until catch-up")
	}
}

// recordPeerLacks records peer_synced = false (once the node is master of the term this site
// was promoted to) and counts the peer down (downs).
func (d *database) recordPeerLacks() error {
	d.awaitPromoted()
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	d.downs++
	if d.node == nil {
		return nil
	}
	return d.node.SetPeerSynced(false)
}

// awaitPromoted waits, at most soloAckTimeout, until the node is master of the term this site
// was promoted to. The first commit after a promotion to a peer database not in step goes solo
// through peerDown, and may come before the node has finished the promotion (it publishes the
// term and takes the role once BeforePromote has returned): the record whose acknowledgement
// it waits for is that term's. A promotion that failed meanwhile leaves SetPeerSynced to refuse.
func (d *database) awaitPromoted() {
	d.mu.Lock()
	term, master := d.term, d.role == gossip.RoleMaster
	d.mu.Unlock()
	if d.node == nil || !master {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), soloAckTimeout)
	defer cancel()
	d.node.AwaitMaster(ctx, term)
}

// soloAllowed is the rule for a master whose peer database stopped answering (DESIGN §3 "going
// solo is announced first"): it commits alone once the other site's sidecar or the witness
// acknowledged peer_synced = false. Unacknowledged only when nobody could acknowledge (none
// alive: none, not a timeout) and there is no witness — the partition case of split brain,
// detected later. A departure from DESIGN §3, which goes solo unacknowledged with a witness too:
// with a witness, a master that hears nobody has lost its majority and is being fenced, and
// whatever it committed alone now the next master would lack; and a member that is alive but
// does not acknowledge may yet promote without knowing.
func soloAllowed(acked, noneAlive, witness bool) bool {
	return acked || (noneAlive && !witness)
}

// soloAckTimeout bounds how long the first solo commit waits for the other site's sidecar or
// the witness to acknowledge peer_synced = false.
const soloAckTimeout = 3 * time.Second

// recordStore keeps the term record in the local database's tandem.state
// (DESIGN §3: the record a member reports is the one its database holds) and
// in the state file, which answers when the database does not.
//
// This site's own records go into the database first (its term fences the
// database, DESIGN §3), then the file. Another site's records, adopted from
// gossip, go into the file first and into the database in the background:
// gossip waits for Save, and a master going solo waits for this site to
// publish the record it adopted (DESIGN §3), so a local database that hangs
// must not hold either.
type recordStore struct {
	site string
	db   *sql.DB
	file *gossip.FileStore
	log  *slog.Logger

	mu      sync.Mutex
	pending *gossip.TermRecord // adopted, not yet in the database
	wake    chan struct{}
	stop    context.CancelFunc
	done    chan struct{}

	// held is the newest term the database was seen to hold: terms there only grow, so one
	// that holds an older term since lost it (restored from an earlier backup, re-initialised).
	held uint64 // under mu
}

func newRecordStore(site string, db *sql.DB, file *gossip.FileStore, log *slog.Logger) *recordStore {
	ctx, cancel := context.WithCancel(context.Background())
	s := &recordStore{site: site, db: db, file: file, log: log, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	go s.copyAdopted(ctx)
	return s
}

// close stops the background copy; a record not copied yet stays in the file.
func (s *recordStore) close() {
	s.stop()
	<-s.done
}

const recordTimeout = 3 * time.Second

func (s *recordStore) Load() (gossip.TermRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	term, master, synced, err := txshim.ReadTermRecord(ctx, s.db)
	if err != nil {
		f, ferr := s.file.Load()
		if ferr == nil && f.Master == s.site {
			// This site's own records reach the database before the file (Save): the
			// database held this one, and Save checks it still does once it answers.
			s.saw(f.Term)
		}
		return f, ferr
	}
	rec := gossip.TermRecord{Term: term, Master: master, PeerSynced: synced}
	s.saw(term)
	f, ferr := s.file.Load()
	if ferr != nil {
		return rec, nil
	}
	if f.Master == s.site && f.Term > rec.Term {
		// This site's own records reach the database before the file (Save): the database
		// lost this one. Taken from the file, it would make this site current — the master
		// of the newest term — over a database that lacks what it committed then, and hand
		// it the role back from the site that holds those commits.
		return gossip.TermRecord{}, lostTermError{fmt.Errorf("the state file %s says this site was master of term %d, but its database holds term %d: "+
			"the database was restored from an earlier backup or re-initialised, and lacks what this site committed then; "+
			"start the other site and let it take control (tandem promote -force there if it waits at cold start), then remove "+
			"the state file, start this site and run tandem resync on the master; if this database is the one to keep (or "+
			"[txshim] was added to a site that ran without it), remove the state file now", s.file.Path(), f.Term, rec.Term)}
	}
	// The file may hold a record the database has not taken (see Save): a newer term; the same
	// term's master saying the peer lacks commits; or, for another site's record, which the
	// file gets first, the same record's newer peer_synced.
	if f.Term > rec.Term || (f.Term == rec.Term && f.Master == rec.Master && f.PeerSynced != rec.PeerSynced &&
		(!f.PeerSynced || f.Master != s.site)) {
		return f, nil
	}
	if f.Term == rec.Term && f.Master == rec.Master && f.PeerSynced == rec.PeerSynced {
		rec.Seq = f.Seq // the database keeps no word order (gossip.TermRecord.Seq); the file does
	}
	return rec, nil
}

// lostTermError is Load's refusal of a database that lost this site's own term.
type lostTermError struct{ error }

func (s *recordStore) Save(rec gossip.TermRecord) error {
	if rec.Master != s.site {
		if err := s.file.Save(rec); err != nil {
			return err
		}
		s.mu.Lock()
		s.pending = &rec
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	// A database that lost a term it held lacks what was committed then, this site's own
	// commits maybe: a term saved into it would make this site master over it (a promotion),
	// or say of it that the peer lacks nothing more (peer_synced).
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held != 0 {
		term, master, _, err := txshim.ReadTermRecord(ctx, s.db)
		if err != nil {
			return err
		}
		if term < held {
			return fmt.Errorf("the database holds term %d (master %q), but held term %d before: it was restored from an earlier backup "+
				"or re-initialised, and lacks what was committed then; this site does not take a term over it: let the other site "+
				"take control, then restart this one", term, master, held)
		}
	}
	// This site's own term: its database must hold it (DESIGN §3 fencing).
	if err := txshim.WriteTermRecord(ctx, s.db, rec.Term, rec.Master, rec.PeerSynced); err != nil {
		return err
	}
	s.saw(rec.Term)
	return s.file.Save(rec)
}

// saw notes that the database holds term (see held).
func (s *recordStore) saw(term uint64) {
	s.mu.Lock()
	s.held = max(s.held, term)
	s.mu.Unlock()
}

// copyAdopted writes adopted records into the database, the latest first and only it; one the
// database refuses as older than what it holds is dropped, one it cannot take now is tried again.
func (s *recordStore) copyAdopted(ctx context.Context) {
	defer close(s.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-retry.C:
		}
		s.mu.Lock()
		rec := s.pending
		s.pending = nil
		s.mu.Unlock()
		if rec == nil {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, recordTimeout)
		err := txshim.WriteTermRecord(wctx, s.db, rec.Term, rec.Master, rec.PeerSynced)
		cancel()
		switch {
		case err == nil || errors.Is(err, txshim.ErrStaleTerm):
			if err == nil {
				s.saw(rec.Term)
			}
			if failing {
				s.log.Info("adopted term record copied into the local database", "term", rec.Term, "master", rec.Master)
			}
			failing = false
		case ctx.Err() != nil:
			return
		default:
			if !failing {
				s.log.Warn("adopted term record not in the local database yet (the state file has it); retrying", "term", rec.Term, "err", err)
			}
			failing = true
			s.mu.Lock()
			if s.pending == nil {
				s.pending = rec
			}
			s.mu.Unlock()
			retry.Reset(2 * time.Second)
		}
	}
}
