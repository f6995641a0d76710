package txshim

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/lib/pq"
)

// Catch-up (DESIGN §5.5) and how the Shipper keeps "the slot is the journal" (§5.2):
//
//   - The Shipper is online (Prepare serves dual commits, plain commits ship as they come),
//     down, or catching up. Any unknown outcome with the peer — a Prepare that lost contact or
//     waited in vain, a plain commit or COMMIT/ROLLBACK PREPARED that could not reach it, the
//     journal overflowing — takes it down: shipping stops, Prepare refuses at once (so the
//     shim goes solo), and the slot's confirmed position stays before the first transaction
//     the peer may lack. A definite refusal stops shipping for good: the peer needs resync —
//     but for a transient one (a deadlock, a lock or statement timeout on the peer: apply.go
//     transient), which is sent again like an unknown outcome.
//   - The journal (decoded transactions in memory) is bounded by MaxJournalBytes. When it is
//     full, the Shipper drops every later event (counting the transactions for Backlog) and
//     sets a gap. The decoder goes on, so the count stays right and the slot's status is
//     reported; nothing past the gap is confirmed. It names the prepared transactions it
//     dropped until their local finish (droppedGIDs): the stream delivers them again, so the
//     resolver may commit one alone on a master (ShipsAlone) as one the journal holds.
//   - CatchUp ships the journal in stream order, one peer transaction per local transaction
//     with its decision row. When the gap's turn comes and the journal is at most a quarter full,
//     the decoder is started anew: the replication stream resends everything past the slot's
//     confirmed position, and add skips what the journal took before (positions up to
//     streamEnd). A short outage thus ships from memory; a long one reads the slot again,
//     perhaps several times, holding at most about MaxJournalBytes.
//   - Shipping is idempotent, so a crash or a lost reply at any point only costs a resend: a
//     plain commit's decision row is inserted first and a duplicate aborts it (skipped; a
//     row of an earlier transaction with the same xid, told by its lsn, is replaced: plainGID);
//     a prepared transaction is looked up on the peer first — decision row committed: skipped;
//     still prepared there: COMMIT PREPARED (or ROLLBACK PREPARED when it rolled back
//     locally); neither: applied with COMMIT. The slot is confirmed only past what the peer
//     committed, so after a crash the next stream resends at most what was in flight.
//   - Transactions still prepared locally (in doubt) do not hold catch-up back: they hold
//     their row locks, so nothing after them in the stream conflicts; they ship at their
//     COMMIT PREPARED, in stream order, like any other.
//   - CatchUp drains in rounds (each to the WAL position at its start) while solo commits go
//     on, until a round is small or the rounds stop shrinking (commits outpace shipping); then
//     it asks hold to stop new commits, drains to the WAL position of that moment (the tail),
//     aligns sequences, and marks the peer synced — unless the journal dropped events
//     meanwhile (writes the hold does not stop): then it ships the tail again.

// ErrNeedsResync means the peer refused a transaction shipped from the stream: the databases
// have diverged, catch-up cannot bring the peer in step, and `tandem resync` must copy the
// application tables (DESIGN §5.5).
var ErrNeedsResync = errors.New("tandem: the peer database needs resync")

// Catch-up tuning: a drain round that shipped at most catchUpHoldBelow transactions is small
// enough to hold commits for the tail; after catchUpRounds rounds commits are held anyway, and
// at once after a round that left a backlog no smaller than it shipped (drainAndSync).
const (
	catchUpHoldBelow = 100
	catchUpRounds    = 8
	catchUpRetries   = 3
)

// catchUpTailMax bounds the part of a catch-up that runs while commits are held (the tail and
// the sequences; the snapshots to verify are taken in the Shipper's own context, as the
// comparison outlives the catch-up): a peer that stops answering, or a lock that a client
// whose COMMIT the hold keeps waiting holds (a sequence its open transaction altered, which
// the sequences' read waits for), must not stop every write commit for long. Out of time, the
// catch-up fails, commits go on alone, and the next one tries again — the tail it leaves is
// shipped before that one's hold. A variable for tests.
var catchUpTailMax = 10 * time.Second

// CatchUp brings the peer in step after it was unreachable (DESIGN §5.5) and returns nil when
// PeerSynced is true. It ships the slot's backlog in stream order while the shim commits alone,
// then calls hold — which must stop new commits and wait for those in flight; nil means no
// hold — ships the tail, copies sequence positions (AlignSequences), marks the peer synced
// and calls release before returning. release runs on failure too; it may check PeerSynced to
// decide whether to switch the shim to dual mode.
//
// It returns nil at once when the peer is synced already. A transaction the peer refuses
// (but for the moment: transient, sent again) ends it with an error wrapping ErrNeedsResync (and every later CatchUp too); an unreachable
// peer ends it with another error, and CatchUp may be called again later. Only one CatchUp
// runs at a time, and only while Run does (it waits for Run to start).
func (s *Shipper) CatchUp(ctx context.Context, hold func(ctx context.Context) (release func(), err error)) (err error) {
	s.mu.Lock()
	for !s.running { // Run may be starting in another goroutine
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("catch-up: the Shipper is not running: %w", ctx.Err())
		}
		s.mu.Lock()
	}
	switch {
	case s.resyncErr != nil:
		err := s.resyncErr
		s.mu.Unlock()
		return fmt.Errorf("catch-up: %w", err)
	case s.catching:
		s.mu.Unlock()
		return errors.New("catch-up: another catch-up is running")
	case s.synced && s.link == linkOnline:
		s.mu.Unlock()
		return nil
	}
	s.catching, s.link, s.synced = true, linkCatchUp, false
	s.advanceLocked() // asks for a new stream if events were dropped
	s.mu.Unlock()
	defer func() { s.endCatching("catch-up", err) }()
	if err := s.checkCopyOwed(ctx); err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	if err := s.checkPeerHolds(ctx); err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	return s.drainAndSync(ctx, hold)
}

// Unsync forgets that the peer was in step, so that the next CatchUp holds commits and ships
// the tail before it says so again, as after an outage: the shim committed alone — its
// caller's word — and what it committed may not be on the peer yet, though the Shipper stayed
// online (a plain commit whose reply could not mark the stream goes on alone without taking it
// down). Shipping goes on meanwhile.
func (s *Shipper) Unsync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.synced {
		s.synced = false
		s.notifyLocked()
	}
}

// checkPeerHolds makes sure the peer database still holds what it committed from this site:
// the slot was confirmed past it, so catch-up ships only what came after. A peer database
// restored from an earlier backup, dropped and made anew (tandem install), or another
// database that peer_dsn names now lacks it, and shipping the tail onto it would leave the
// two databases different while the peer is called synced — inserts go through, updates
// change the restored rows. Its newest decision row of this site (pruning keeps it) tells:
// one before the newest the peer was seen to commit (peerHeld) means that peer lost
// transactions, and it needs resync (ErrNeedsResync, from now on). CatchUp asks first, and so
// does every new apply connection (checkApplyConn): the pool redials a peer database made
// anew as soon as the old connections broke. A peer that does not answer is left to the
// caller, which finds it unreachable.
func (s *Shipper) checkPeerHolds(ctx context.Context) error {
	held := s.heldOnPeer() // before the peer is read: what it commits meanwhile is not asked for
	if held == 0 {
		return nil
	}
	db, err := OpenDB(s.cfg.PeerDSN)
	if err != nil {
		return nil
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	newest, err := peerNewest(func(q string, args ...string) (string, error) {
		var v sql.NullString
		vals := make([]any, len(args))
		for i, a := range args {
			vals[i] = a
		}
		err := db.QueryRowContext(qctx, q, vals...).Scan(&v)
		return v.String, err
	}, s.cfg.Site)
	if err != nil {
		return nil
	}
	return s.peerLost(newest, held)
}

// checkCopyOwed fails, for good (ErrNeedsResync), when the peer database is owed a copy of
// this site's tables (its owedGID row): a resync made the lost slot anew and no copy committed
// since — it was refused, failed, or its process was killed. The new slot streams from its
// making on, without what the lost one held, and the lost slot, the other sign of that, is
// gone. A peer that does not answer fails the catch-up (its caller tries again): nothing else
// asks, and going on would call the peer synced without a copy it may be owed
// (TestCatchUpOwedCopyPeerSlow). A peer database without tandem.decisions is owed nothing.
func (s *Shipper) checkCopyOwed(ctx context.Context) error {
	db, err := OpenDB(s.cfg.PeerDSN)
	if err != nil {
		return fmt.Errorf("peer database: %w", err)
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	var owed bool
	err = db.QueryRowContext(qctx, `SELECT EXISTS (SELECT 1 FROM tandem.decisions WHERE gid = $1)`, owedGID(s.cfg.Site)).Scan(&owed)
	switch {
	case sqlState(err) == "42P01": // undefined_table
		return nil
	case err != nil:
		return fmt.Errorf("peer database: read whether it is owed a copy of the tables (%s): %w", owedGID(s.cfg.Site), err)
	case !owed:
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resyncErr == nil {
		s.resyncErr = fmt.Errorf("the peer database is owed a copy of the application tables: a resync made the lost replication slot anew, "+
			"and no copy has committed since (the new slot lacks what the lost one held): %w", ErrNeedsResync)
		s.logger.Error("the peer database lacks what the lost replication slot held; shipping stops, the peer needs resync (tandem resync)", "err", s.resyncErr)
	}
	s.goDownLocked("the peer is owed a copy", s.resyncErr)
	s.synced = false
	s.notifyLocked()
	return s.resyncErr
}

// checkApplyConn is checkPeerHolds on a new apply connection (applyPool.check).
func (s *Shipper) checkApplyConn(ctx context.Context, c *applyConn) error {
	held := s.heldOnPeer()
	if held == 0 {
		return nil
	}
	newest, err := peerNewest(func(q string, args ...string) (string, error) {
		params := make([][]byte, len(args))
		for i, a := range args {
			params[i] = []byte(a)
		}
		res := c.conn.ExecParams(ctx, q, params, nil, nil, nil).Read()
		if res.Err != nil {
			return "", res.Err
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
			return "", errors.New("no row")
		}
		return string(res.Rows[0][0]), nil
	}, s.cfg.Site)
	if err != nil {
		return err
	}
	return s.peerLost(newest, held)
}

func (s *Shipper) heldOnPeer() pglogrepl.LSN {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerHeld
}

// peerNewest reads, with query (one text value of one row), the lsn of the peer's newest
// decision row of site (or of its copy of the tables: resyncGID): "0/0" when there is none,
// or no tandem.decisions at all; "" when its tandem.decisions has no lsn column (an earlier
// version's install), which peerLost takes for holding everything.
func peerNewest(query func(q string, args ...string) (string, error), site string) (string, error) {
	has, err := query(`SELECT CASE WHEN pg_catalog.to_regclass('tandem.decisions') IS NULL THEN 'none'
  WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = pg_catalog.to_regclass('tandem.decisions')
    AND attname = 'lsn' AND NOT attisdropped) THEN 'lsn' ELSE 'nolsn' END`)
	switch {
	case err != nil:
		return "", err
	case has == "none":
		return "0/0", nil
	case has == "nolsn":
		return "", nil
	}
	// Rows without lsn (an earlier version's) are not counted: peerHeld counts only rows this
	// process's applies wrote, with their lsn (a skip decided by such a row raises nothing).
	return query(`SELECT COALESCE(pg_catalog.max(lsn)::text, '0/0') FROM tandem.decisions
  WHERE substring(gid from '^tandem_(.+)_(?:[0-9]+|plain)_[0-9]+$') = $1 OR gid = $2`, site, resyncGID(site))
}

// peerLost compares the peer's newest decision row of this site (newest, from peerNewest)
// with held, peerHeld as it was before the peer was read; when the peer lacks what it committed, shipping stops for good and the
// returned error (wrapping ErrNeedsResync) says why.
func (s *Shipper) peerLost(newest string, held pglogrepl.LSN) error {
	if newest == "" {
		return nil // no lsn column: nothing to tell by
	}
	at, err := pglogrepl.ParseLSN(newest)
	if err != nil {
		return nil
	}
	if at >= held {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	why := fmt.Sprintf("has none of the decision rows of the transactions it committed from this site (the newest at %s)", held)
	if at != 0 {
		why = fmt.Sprintf("lacks transactions it committed from this site: its newest decision row of this site is at %s, the newest it committed at %s", at, held)
	}
	err = fmt.Errorf("the peer database %s — restored from an earlier backup, made anew, or another database? %w", why, ErrNeedsResync)
	if s.resyncErr == nil {
		s.resyncErr = err
		s.logger.Error("the peer database lost transactions it had committed; shipping stops, the peer needs resync (tandem resync)", "err", err)
	}
	s.goDownLocked("the peer lost transactions", err)
	s.synced = false
	s.notifyLocked()
	return s.resyncErr
}

// drainAndSync is CatchUp's work once it runs (s.catching, link catching up): ship the backlog,
// hold, ship the tail, align sequences, mark the peer synced (the tail again while the journal
// has a gap).
func (s *Shipper) drainAndSync(ctx context.Context, hold func(ctx context.Context) (release func(), err error)) (err error) {
	start := time.Now()
	s.logger.Info("catch-up starting", "backlog", s.Backlog())
	s.pool.closeIdle(ctx) // connections from before an outage are dead
	s.opPool.closeIdle(ctx)

	local, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return fmt.Errorf("catch-up: local database: %w", err)
	}
	defer local.Close()
	stats0 := s.Stats()
	for round := 1; ; round++ {
		until, err := currentWAL(ctx, local)
		if err != nil {
			return err
		}
		began := time.Now()
		n, err := s.drain(ctx, until)
		if err != nil {
			return err
		}
		// What was committed meanwhile is the next round. When it is no smaller than this
		// one, commits outpace shipping (catch-up ships in stream order, a transaction or a
		// run of small ones at a time; many sessions commit at once): each later round would
		// be larger, and a hold after the last of them would stop commits the longest.
		// Holding now stops them for the shortest tail there will be.
		left := s.Backlog()
		s.logger.Debug("catch-up round", "round", round, "shipped", n, "took", time.Since(began).Round(time.Millisecond), "left", left)
		if n <= catchUpHoldBelow || round >= catchUpRounds {
			break
		}
		if left >= n {
			s.logger.Info("catch-up: commits outpace shipping; holding them for the tail now", "round", round, "shipped", n, "left", left)
			break
		}
	}
	// Every apply connection ready before dual commits begin, dialled while commits go on
	// (applyPool.fill). One the peer refuses now (its connection slots full, say) is dialled
	// when needed, as before: the tail tells whether the peer is there. OpTimeout bounds it, as
	// it bounds each ship: a peer that accepts connections and never answers must not hold
	// catch-up for as long as its caller allows.
	fctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	ferr := cmp.Or(s.pool.fill(fctx), s.opPool.fill(fctx))
	cancel()
	if ferr != nil && ctx.Err() == nil {
		s.logger.Warn("catch-up: cannot open every apply connection ahead; the first dual commits open them", "err", ferr)
	}
	if hold != nil {
		release, err := hold(ctx)
		if err != nil {
			return fmt.Errorf("catch-up: hold commits: %w", err)
		}
		defer release()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, catchUpTailMax)
		defer cancel()
	}
	// The tail, then sequences. The journal may drop events meanwhile — writes the hold does
	// not stop (those the lexer took for read-only), or no hold — and the peer is not in step
	// while what they hold is left in the slot: the tail is shipped again until, at the moment
	// the peer is marked synced, the journal has no gap.
	for {
		until, err := currentWAL(ctx, local)
		if err != nil {
			return err
		}
		if _, err := s.drain(ctx, until); err != nil {
			return err
		}
		// The sequences' positions are copied to the peer, and with a verification to follow,
		// between its reads of the local database's positions and the peer's: a nextval on this
		// database after the copy (the hold stops commits, not calls) read by the verification
		// as the master's position was a false difference (TestVerifyCatchUpNextvalAfterCopy).
		copied := false
		var alignErr error
		copySeqs := func() error {
			copied = true
			if alignErr = s.alignSequences(ctx); alignErr != nil {
				return alignErr
			}
			if f := s.hooks.aligned.get(); f != nil {
				f()
			}
			return nil
		}
		var snaps *verifySnapshots
		s.mu.Lock()
		vctx := s.runCtx
		s.mu.Unlock()
		if hold != nil && s.cfg.VerifyCatchUp {
			// Both databases hold the same rows now, with commits held: snapshots of this moment
			// are compared once they go on (DESIGN §5.5: verify runs after every catch-up).
			// The comparison outlives this call (whose ctx may be an operator's request): it runs
			// as long as the Shipper does.
			var verr error
			if snaps, verr = beginVerifyCopying(vctx, s.cfg.LocalDSN, s.cfg.PeerDSN, copySeqs); verr != nil && alignErr == nil {
				s.logger.Warn("catch-up: cannot take the snapshots to verify; not verified", "err", verr)
			}
		}
		if !copied {
			_ = copySeqs()
		}
		if alignErr != nil {
			if snaps != nil {
				snaps.close()
			}
			return fmt.Errorf("catch-up: %w", alignErr)
		}
		at := time.Now()
		synced, err := s.syncAfterTail(start, stats0)
		if !synced || err != nil {
			if snaps != nil {
				snaps.close()
			}
			if err != nil {
				return err
			}
			continue
		}
		if snaps != nil {
			s.verifying.Add(1)
			go s.verifyCatchUp(vctx, snaps, at)
		}
		return nil
	}
}

// syncAfterTail marks the peer synced once catch-up shipped the tail, unless the journal
// dropped events since (a gap): then the tail is to be shipped again.
func (s *Shipper) syncAfterTail(start time.Time, stats0 ShipStats) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.link != linkCatchUp || !s.running:
		return false, errors.New("catch-up: the Shipper stopped meanwhile")
	case s.gap:
		s.logger.Info("catch-up: the journal dropped events after the tail; shipping them too", "not_held", s.dropped)
		return false, nil
	}
	s.link, s.synced = linkOnline, true
	// In step again, Prepare asks the peer, whose own check_term refuses a term it still
	// refuses (its record only grows): a peer restored or re-seeded since (resync) may take it.
	// A catch-up in the refused term gets here only so — its transactions are refused as the
	// first was — and under the sidecar not even then: its catch-up round looks at the peer
	// database's record first and fences the shim in that term instead (cmd/tandem
	// fenceByPeer), which catches up no more in it.
	s.refused.Store(nil)
	s.stats.CatchUps++
	st := s.stats
	s.notifyLocked()
	s.logger.Info("catch-up done: the peer is synced", "in", time.Since(start).Round(time.Millisecond),
		"shipped", st.Shipped-stats0.Shipped, "skipped", st.Skipped-stats0.Skipped, "resolved", st.Resolved-stats0.Resolved,
		"restarts", st.Restarts-stats0.Restarts)
	return true, nil
}

// endCatching ends what CatchUp or Resync started: the next one may run, and a failure leaves
// the peer down (shipping waits for the next catch-up).
func (s *Shipper) endCatching(what string, err error) {
	s.mu.Lock()
	s.catching = false
	if err != nil && s.link == linkCatchUp {
		s.link = linkDown
	}
	s.notifyLocked()
	s.mu.Unlock()
	if err != nil {
		s.logger.Warn(what+" failed", "err", err)
	}
}

// currentWAL is the local database's WAL position once everything committed so far is written:
// every transaction committed so far ends before it. A commit made with synchronous_commit =
// off is visible (its client told COMMIT) before its WAL is written, so the write position
// alone can be before it; a synchronous commit of a transaction of its own first writes all
// WAL before it (the insert position is no target: it may point past a page header, where
// the stream never reports being). It waits for the local flush only, not for a synchronous
// standby of the local database.
func currentWAL(ctx context.Context, db *sql.DB) (pglogrepl.LSN, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("catch-up: write the local WAL: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = local`); err != nil {
		return 0, fmt.Errorf("catch-up: write the local WAL: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_catalog.pg_logical_emit_message(true, 'tandem', '')`); err != nil {
		return 0, fmt.Errorf("catch-up: write the local WAL: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("catch-up: write the local WAL: %w", err)
	}
	var text string
	if err := db.QueryRowContext(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&text); err != nil {
		return 0, fmt.Errorf("catch-up: read the local WAL position: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(text)
	if err != nil {
		return 0, fmt.Errorf("catch-up: local WAL position %q: %w", text, err)
	}
	return lsn, nil
}

// drain ships, in stream order, every finished transaction of the stream up to until, and
// returns how many it shipped once the stream was read past until with nothing before it left
// for the peer. Unknown outcomes and transient refusals (shipped) are retried a few times on
// fresh connections (shipping is idempotent) before drain gives up.
func (s *Shipper) drain(ctx context.Context, until pglogrepl.LSN) (int, error) {
	n, fails := 0, 0
	// After a run failed, its transactions go one at a time: the single path tells a refusal
	// from one the peer had already (a run left half-recorded by a crash).
	var aloneUntil pglogrepl.LSN
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		s.mu.Lock()
		switch {
		case s.resyncErr != nil:
			err := s.resyncErr
			s.mu.Unlock()
			return n, fmt.Errorf("catch-up: %w", err)
		case !s.running || s.link != linkCatchUp:
			link := s.link
			s.mu.Unlock()
			return n, fmt.Errorf("catch-up: interrupted (the Shipper is %s)", linkName(link))
		}
		e, at, busy := s.nextToShipLocked(true, until)
		var job shipJob
		var run []shipJob
		if e != nil {
			job = s.claimLocked(e)
			if e.pos > aloneUntil {
				for _, r := range s.runAfterLocked(at, until) {
					run = append(run, s.claimLocked(r))
				}
			}
		}
		reached := e == nil && !busy && !s.gap && s.streamEnd >= until
		if e == nil && !busy && s.gap {
			s.restartLocked() // nothing before the gap left to ship: read what follows from the slot
		}
		changed := s.changed
		s.mu.Unlock()
		if reached {
			return n, nil
		}
		if e == nil {
			select {
			case <-changed:
			case <-tick.C:
				s.logger.Info("catch-up progress", "backlog", s.Backlog(), "shipped_this_round", n, "until", until)
			case <-ctx.Done():
				return n, fmt.Errorf("catch-up: %w", ctx.Err())
			}
			continue
		}
		if len(run) > 0 {
			run = append([]shipJob{job}, run...)
			err := s.shipRun(ctx, run)
			if err == nil {
				for _, j := range run {
					s.shipped(j, shipApplied, nil, true)
				}
				n += len(run)
				fails = 0
				continue
			}
			s.logger.Debug("catch-up: a run of transactions failed; shipping them one at a time", "from", job.gid, "transactions", len(run), "err", err)
			for _, j := range run[1:] {
				s.unclaim(j)
			}
			aloneUntil = run[len(run)-1].e.pos
		}
		res, err := s.shipOne(ctx, job)
		if catchUp := s.hooks.catchUp.get(); err == nil && catchUp != nil {
			if herr := catchUp(n + 1); herr != nil {
				s.unclaim(job)
				return n, herr
			}
		}
		s.shipped(job, res, err, true)
		if err == nil {
			n++
			fails = 0
			continue
		}
		switch {
		case ctx.Err() != nil:
			return n, fmt.Errorf("catch-up: %w", ctx.Err())
		case pgErrCode(err) == sqlstateStaleTerm:
			return n, fmt.Errorf("catch-up: ship %s: %w: %w", job.gid, ErrStaleTerm, err)
		case s.Err() != nil:
			return n, fmt.Errorf("catch-up: %w", s.Err())
		}
		fails++
		if fails > catchUpRetries {
			if transient(err) {
				return n, fmt.Errorf("catch-up: the peer keeps refusing %s for the moment: %w", job.gid, err)
			}
			return n, fmt.Errorf("catch-up: the peer is unreachable: ship %s: %w", job.gid, err)
		}
		s.pool.closeIdle(ctx)
		s.opPool.closeIdle(ctx)
		select {
		case <-time.After(time.Duration(fails) * 200 * time.Millisecond):
		case <-ctx.Done():
			return n, fmt.Errorf("catch-up: %w", ctx.Err())
		}
	}
}

// A run is what catch-up ships in one peer transaction (applyRun): up to runMax transactions,
// each a plain commit of at most runMaxChanges changes held in memory, without DDL.
const (
	runMax        = 64
	runMaxChanges = 100
)

// runnable tells whether e may be shipped in a run.
func runnable(e *jentry) bool {
	return e.plain && !e.undo && e.txn != nil && e.txn.spill == nil && e.txn.ddlAt.IsZero() && e.txn.Len() <= runMaxChanges
}

// runAfterLocked returns the entries catch-up would ship after the one at journal index at
// (nextToShipLocked found it), in its order (skipping those done, in doubt or suspect), while
// each may join that one in a run: none when it may not, or while the catchUp hook is set (a test
// that counts transactions as they are shipped, or stops shipping between two of them).
func (s *Shipper) runAfterLocked(at int, until pglogrepl.LSN) []*jentry {
	if s.hooks.catchUp.get() != nil || !runnable(s.journal[at]) {
		return nil
	}
	var run []*jentry
	for _, e := range s.journal[at+1:] {
		if len(run)+1 >= runMax || e.pos > until {
			break
		}
		if e.state == stDone || !e.finished() || e.suspect {
			continue
		}
		if e.shipping || e.state == stApplying || !runnable(e) {
			break
		}
		run = append(run, e)
	}
	return run
}

// shipRun ships run, claimed entries that runAfterLocked chose, in one peer transaction. Any
// error means the run's outcome is for the single path to find out (see applyRun).
func (s *Shipper) shipRun(ctx context.Context, run []shipJob) error {
	allowance := s.cfg.OpTimeout
	txns := make([]*Txn, len(run))
	gids := make([]string, len(run))
	for i, j := range run {
		txns[i], gids[i] = j.txn, j.gid
		allowance += sizeAllowance(j.txn)
	}
	octx, cancel := context.WithTimeout(ctx, allowance)
	defer cancel()
	slot, err := s.pool.get(octx)
	if err != nil {
		return err
	}
	if at, err := s.copiedPoint(octx, slot.c); err != nil || run[0].e.pos <= at {
		// In the peer's copy of the tables (Resync), or unknown: the single path decides.
		s.pool.put(octx, slot, err != nil)
		return cmp.Or(err, errors.New("the run starts in the peer's copy of the tables"))
	}
	err = slot.c.applyRun(octx, txns, gids, s.term.Load())
	s.pool.put(octx, slot, err != nil && !errors.Is(err, errRunRefused))
	return err
}

// VerifyReport is the outcome of the verification after a catch-up (ShipperConfig.VerifyCatchUp).
type VerifyReport struct {
	At    time.Time     // the moment compared: when catch-up held commits
	Took  time.Duration // how long the comparison took
	Diffs []string      // what differs (Verify); none: identical
	Err   error         // the comparison failed: nothing is known
}

// LastVerify returns the last verification after a catch-up; ok is false before the first.
func (s *Shipper) LastVerify() (r VerifyReport, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastVerify == nil {
		return VerifyReport{}, false
	}
	return *s.lastVerify, true
}

// verifyCatchUp compares the snapshots a catch-up took while it held commits, and closes them.
// What it finds is reported, and changes nothing: the hold stops the shim's commits only, and a
// write that bypassed the shim on this database (shipped from the stream like any) may stand in
// the local snapshot and not yet on the peer — a difference that shipping ends.
func (s *Shipper) verifyCatchUp(ctx context.Context, snaps *verifySnapshots, at time.Time) {
	defer s.verifying.Done()
	defer snaps.close()
	start := time.Now()
	diffs, kinds, err := snaps.compareKinds(ctx)
	r := &VerifyReport{At: at, Took: time.Since(start), Diffs: diffs, Err: err}
	switch {
	case err != nil:
		s.logger.Warn("verify after catch-up failed", "err", err)
	case len(diffs) > 0:
		// The hint by kind: resync copies rows only, and the hint once said it ended every
		// difference — definitions and large objects too (TestVerifyCatchUpHintByKind).
		s.logger.Error("verify after catch-up: the databases differ (tandem verify names them)",
			"differences", diffs, "hint", kinds.hint(), "took", r.Took.Round(time.Millisecond))
	default:
		s.logger.Info("verify after catch-up: both databases identical", "took", r.Took.Round(time.Millisecond))
	}
	s.mu.Lock()
	s.lastVerify = r
	s.notifyLocked()
	s.mu.Unlock()
}

// settleEvery is how often settleLoop asks the peer about the transactions it settles.
const settleEvery = time.Second

// settleLoop runs settle every settleEvery, and at once when asked (settleNow), until ctx
// ends. Its connection to the peer is opened when first needed.
func (s *Shipper) settleLoop(ctx context.Context) {
	var peer *sql.DB
	defer func() {
		if peer != nil {
			peer.Close()
		}
	}()
	tick := time.NewTicker(settleEvery)
	defer tick.Stop()
	held := 0 // what the last pass kept for this site's next master term, said once
	for {
		select {
		case <-tick.C:
		case <-s.settleNow:
		case <-ctx.Done():
			return
		}
		held = s.settle(ctx, &peer, held)
	}
}

// settle lets the slot go past the backup's own transactions that the peer has (DESIGN §5.2:
// the slot is the journal, so what the peer committed needs no place in it), and decides the
// suspects. It runs on a backup, and on a master while suspects are left.
//
// A master's slot is confirmed past a transaction some time after the peer committed it: a
// sidecar killed then (kill -9, a crash) leaves in the slot transactions the peer has, dual
// commits (gid tandem_<site>_<term>_<xid>) and plain commits shipped from the stream
// (plainGID), each with its decision row on the peer (DESIGN §5.3, §5.5). Restarted as
// backup, the sidecar met them in its stream as its own transactions: before the bypass
// boundary (the local term record still named this site master) they were kept for a next
// master term that may never come, and the slot held the backup's WAL without bound; past it
// (the new master's term record was there already: boundary 0) they were reported as writes
// that bypassed Tandem, a false alarm. Like catch-up (shipOn), settle asks the peer for the
// decision rows instead, and for the position of its copy of the tables (Resync):
//   - the peer has the transaction: done, quietly; the slot may go past it. Nothing is applied
//     on the peer, so nothing is applied twice. For a plain commit, a decision row with
//     another lsn is an earlier transaction's with the same xid (plainGID): the peer lacks it.
//   - prepared on the peer, not committed: left alone; the resolver settles it, and a later
//     pass finds its decision row.
//   - a suspect the peer lacks: a write that bypassed Tandem on this backup's database, or
//     one this site committed alone as master in a term before the peer's site took a newer
//     one; the latter, shipped into the newer term's database, would land after and over its
//     master's writes (DESIGN §3, as Abandon). Either way it is reported and never shipped, as
//     before.
//   - another the peer lacks (committed here as master alone, before the boundary): kept, as
//     before, for this site's next master term, whose catch-up ships it; said once in the log.
//
// A transaction still prepared locally waits for its local outcome. When the peer does not
// answer, nothing changes until a later pass. held is what the last pass kept; settle returns
// what this one did.
func (s *Shipper) settle(ctx context.Context, peer **sql.DB, held int) int {
	s.mu.Lock()
	backup := s.backup.Load()
	var es []*jentry
	var gids []string
	for _, e := range s.journal {
		if e.state == stDone || e.state == stApplying || e.shipping || e.undo || e.gid == "" || !e.finished() {
			continue
		}
		if e.suspect || backup {
			es = append(es, e)
			gids = append(gids, e.gid)
		}
	}
	s.mu.Unlock()
	if len(es) == 0 {
		return 0
	}
	if *peer == nil {
		db, err := OpenDB(s.cfg.PeerDSN)
		if err != nil {
			s.logger.Warn("cannot ask the peer which of this site's transactions it has", "err", err)
			return held
		}
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(time.Minute) // most passes ask nothing
		*peer = db
	}
	has, prepared, copied, err := peerHas(ctx, *peer, s.cfg.OpTimeout, gids, resyncGID(s.cfg.Site))
	if err != nil {
		s.logger.Debug("cannot ask the peer which of this site's transactions it has; asked again later", "err", err)
		return held
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	released, kept := 0, 0
	var bypassed []string
	for _, e := range es {
		switch {
		case e.state == stDone || e.state == stApplying || e.shipping || e.undo:
		case peerHasEntry(e, has) || e.pos <= copied:
			if !backup && e.pos <= copied {
				// In the copy, whose row is at copied. A decision row found (has) may be an
				// earlier version's, without the lsn peerNewest counts.
				s.peerHasLocked(e)
			}
			s.markDoneLocked(e)
			s.stats.Skipped++
			released++
		case prepared[e.gid]:
			kept++
		case e.suspect:
			s.markDoneLocked(e)
			s.stats.Bypassed++
			bypassed = append(bypassed, e.gid)
		case backup:
			kept++
		}
	}
	if released > 0 {
		s.logger.Info("transactions this site committed as master that the peer has: the slot lets them go", "transactions", released)
	}
	if len(bypassed) > 0 {
		s.logger.Error("writes bypassed Tandem on this backup's database: not shipped; the databases differ (tandem verify)",
			"transactions", len(bypassed), "gids", bypassed[:min(len(bypassed), 10)])
	}
	if kept > 0 && kept != held {
		s.logger.Warn("transactions this site committed as master that the peer lacks: held in the slot for this site's next term as master",
			"transactions", kept)
	}
	if released > 0 || len(bypassed) > 0 {
		s.advanceLocked()
	}
	return kept
}

// peerHasEntry tells whether has (from peerHas) holds e's decision row: for a plain commit,
// one that records this transaction and not an earlier one with the same xid (plainGID).
func peerHasEntry(e *jentry, has map[string]pglogrepl.LSN) bool {
	rowLSN, ok := has[e.gid]
	return ok && (!e.plain || plainDecided(rowLSN, e.pos))
}

// peerHas reads from the peer which of gids have a decision row (committed there), with the
// row's lsn (0: none), and which are prepared there, and the position of the peer's copy of
// the tables (the decision row resync; 0: none).
func peerHas(ctx context.Context, db *sql.DB, timeout time.Duration, gids []string, resync string) (has map[string]pglogrepl.LSN, prepared map[string]bool, copied pglogrepl.LSN, err error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := db.QueryContext(qctx, `SELECT gid, true, lsn::text FROM tandem.decisions WHERE gid = ANY($1) OR gid = $2
UNION ALL SELECT gid, false, NULL FROM pg_catalog.pg_prepared_xacts WHERE gid = ANY($1) AND database = current_database()`,
		pq.Array(gids), resync)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("read decision rows on the peer: %w", err)
	}
	defer rows.Close()
	has, prepared = map[string]pglogrepl.LSN{}, map[string]bool{}
	for rows.Next() {
		var gid string
		var decided bool
		var lsn sql.NullString
		if err := rows.Scan(&gid, &decided, &lsn); err != nil {
			return nil, nil, 0, fmt.Errorf("read decision rows on the peer: %w", err)
		}
		var at pglogrepl.LSN
		if decided && lsn.Valid {
			if at, err = pglogrepl.ParseLSN(lsn.String); err != nil {
				return nil, nil, 0, fmt.Errorf("read the lsn of decision row %s on the peer: %w", gid, err)
			}
		}
		switch {
		case !decided:
			prepared[gid] = true
		case gid == resync:
			copied = at
		default:
			has[gid] = at
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, 0, fmt.Errorf("read decision rows on the peer: %w", err)
	}
	return has, prepared, copied, nil
}
