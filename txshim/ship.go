package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"github.com/tandem-ha/tandem/config"
)

// gidFor is the global transaction id of a write transaction (DESIGN §5.3).
func gidFor(site string, term uint64, xid uint64) string {
	return "tandem_" + site + "_" + strconv.FormatUint(term, 10) + "_" + strconv.FormatUint(xid, 10)
}

// parseGID splits a gid made by gidFor. Site names may hold underscores, so the two numbers
// are taken from the right. A site part no site may be named (config.ValidSite: upper case, a
// quote, a space, a backslash) is no gid of Tandem's: any role may prepare a transaction under
// a gid of its choosing, and the resolver decided such a foreign one by the other database's
// status of an xid of the same number (TestResolverForeignGIDNotSiteName).
func parseGID(gid string) (site string, term uint64, xid uint64, ok bool) {
	rest, found := strings.CutPrefix(gid, "tandem_")
	if !found {
		return "", 0, 0, false
	}
	i := strings.LastIndexByte(rest, '_')
	if i <= 0 {
		return "", 0, 0, false
	}
	xid, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '_')
	if j <= 0 {
		return "", 0, 0, false
	}
	term, err = strconv.ParseUint(rest[j+1:], 10, 64)
	if err != nil {
		return "", 0, 0, false
	}
	if !config.ValidSite(rest[:j]) {
		return "", 0, 0, false
	}
	return rest[:j], term, xid, true
}

// plainGID is the decision-row key of a plain commit shipped from the stream.
//
// Unlike gidFor's, it holds no term and nothing of the database: after the site's database is
// restored from a backup or re-initialised, its xids repeat, while the peer still holds the
// rows of the earlier transactions that had them (pruning keeps rows whose lsn is past the
// slot's restart_lsn, and a new cluster's LSNs start low). So a plain gid's row counts as this
// transaction only when its lsn is the transaction's end in the source's stream (Txn.EndLSN,
// the journal entry's pos), which apply writes in it (plainDecided); a row with another lsn is
// a stale one, replaced when the transaction is shipped (applyTx.decisionRow). xid and LSN
// each repeat after a restore, but the pair does not in practice: within one cluster LSNs only
// grow (so the xids' wraparound cannot repeat it either), and across a restore it would take a
// commit with the same xid ending at exactly the same byte of WAL as the earlier one — the
// restored cluster writing again, byte for byte, the WAL the lost one wrote after the restore
// point. That case, left, would still be taken for shipped. A row without lsn (written by an
// earlier version) still counts, as before.
func plainGID(site string, xid uint32) string {
	return "tandem_" + site + "_plain_" + strconv.FormatUint(uint64(xid), 10)
}

// plainDecided tells whether a plain gid's decision row whose lsn is rowLSN (0: NULL) records
// the transaction that ends at end in the source's stream (see plainGID).
func plainDecided(rowLSN, end pglogrepl.LSN) bool {
	return rowLSN == 0 || rowLSN == end
}

// ShipperConfig configures a Shipper.
type ShipperConfig struct {
	Site     string // the local site: the source of the shipped changes
	LocalDSN string // the local database, streamed through the slot tandem_<Site>
	PeerDSN  string // the peer database the changes are applied to
	Conns    int    // apply connections to the peer; 0 means 4
	// OpTimeout bounds each asynchronous COMMIT/ROLLBACK PREPARED and each transaction shipped
	// from the stream (plus a second per MiB of its values); 0 means 10s.
	OpTimeout time.Duration
	// MaxJournalBytes bounds the decoded transactions held in memory (their values' size plus
	// a small overhead per stream event). Past it the Shipper forgets what the decoder delivers
	// and reads it again from the slot during catch-up (see catchup.go). 0 means 64 MiB.
	MaxJournalBytes int64
	// SpillBytes is how much of one transaction's changes is held in memory; the rest are
	// written to an unlinked file in SpillDir ("" is the system's temporary directory) and
	// read back for the apply (spill.go). 0 means MaxJournalBytes/16; negative, never.
	SpillBytes int64
	SpillDir   string
	// VerifyCatchUp: after a catch-up that held commits, compare both databases as they were
	// at that moment (Verify; LastVerify).
	VerifyCatchUp bool
	// DecisionRetention is how long decision rows are kept at least (prune.go); 0 means an
	// hour, negative never pruned.
	DecisionRetention time.Duration
	PruneInterval     time.Duration // how often the master prunes them; 0 means a minute
	// SequenceInterval is how often sequence positions are copied to the peer while it is
	// synced (DESIGN §5.2 "Sequences"); 0 means 5s, negative never.
	SequenceInterval time.Duration
	// OnPreparedBlocker is called, from an apply's watchdog, when a prepared transaction has
	// held an apply on the peer for a second: one a master that lost its role left in doubt
	// there, say, which a resolver pass settles (the watchdog never ends prepared
	// transactions). It must not block. nil: nothing is called.
	OnPreparedBlocker func()
	Logger            *slog.Logger
}

// Link states: how the Shipper stands with the peer.
const (
	linkOnline  = iota // Prepare serves dual commits; plain commits ship as they come
	linkDown           // the peer was unreachable or too slow: nothing ships until CatchUp
	linkCatchUp        // CatchUp ships the backlog in stream order; Prepare refuses
)

func linkName(l int) string {
	return [...]string{"online", "down", "catching up"}[l]
}

// ShipStats are counters since the Shipper was made.
type ShipStats struct {
	Shipped  int64 // transactions applied on the peer from the stream (plain commits, catch-up)
	Skipped  int64 // transactions the stream resent that the peer had already (decision row)
	Resolved int64 // transactions prepared on the peer that catch-up committed or rolled back there
	Dropped  int64 // decoded transactions forgotten for the memory bound, to be read again
	Spilled  int64 // decoded transactions held partly in a spill file (spill.go)
	Copied   int64 // inserts applied on the peer through COPY (applycopy.go)
	Restarts int64 // times the slot was streamed again from its confirmed position
	CatchUps int64 // catch-ups that ended with the peer synced
	SeqSyncs int64 // times sequence positions were copied to the peer
	Resyncs  int64 // times Resync copied the application tables to the peer
	Pruned   int64 // decision rows the master's periodic pruning deleted (prune.go)
	// Bypassed counts transactions found in the stream of a backup's database (SetBackup):
	// writes that bypassed Tandem, reported and never shipped (DESIGN §5.2).
	Bypassed int64
}

// Shipper is the peer side of the dual commit (the Peer of commit.go): it streams the local
// slot, prepares each transaction on the peer when asked (DESIGN §5.3 step 2), commits or rolls
// it back there afterwards, ships plain commits in stream order, and lets the slot forget a
// transaction only once the peer has committed it ("the slot is the journal", §5.2). After the
// peer was unreachable, CatchUp brings it back in step (§5.5, catchup.go).
type Shipper struct {
	cfg    ShipperConfig
	logger *slog.Logger
	hooks  shipperHooks // set only by tests
	pool   *applyPool   // applies: Prepare, plain commits, catch-up
	// opPool runs COMMIT/ROLLBACK PREPARED only. Applies may wait on the peer for row locks of
	// transactions prepared there; their COMMIT PREPARED must never wait for a connection
	// behind them.
	opPool *applyPool
	term   atomic.Uint64
	// refused is the peer's refusal of a transaction shipped from the stream for its term (the
	// peer's term record newer, or that term of another master), the newest term refused; nil
	// for none. Prepare refuses a gid of that term or an older one with it (see Prepare). Only a
	// catch-up that brings the peer in step clears it (syncAfterTail), which in that term takes
	// a peer database whose record changed (restored, re-seeded): the sidecar fences the shim
	// in the term instead (cmd/tandem fenceByPeer).
	refused atomic.Pointer[termRefusal]
	backup  atomic.Bool // see SetBackup
	// bypassFrom: a backup's own transactions ending after this stream position bypassed
	// Tandem (SetBypassFrom); MaxUint64: none did.
	bypassFrom atomic.Uint64
	abandoning atomic.Bool // see Abandon
	ops        chan peerOp
	restart    chan struct{} // asks decodeLoop to stream the slot again from its confirmed position
	settleNow  chan struct{} // asks settleLoop for a pass now

	mu         sync.Mutex
	running    bool
	dec        *Decoder           // the decoder of the current stream; nil between streams
	received   atomic.Uint64      // stream messages every decoder read (Decoder.received)
	copied     atomic.Int64       // ShipStats.Copied, counted by the apply connections
	own        ownPIDs            // the backend pids of the apply connections of pool and opPool
	journal    []*jentry          // unconfirmed stream entries in stream order
	byGID      map[string]*jentry // prepared transactions in the journal
	changed    chan struct{}      // closed and replaced on every change of the journal or link
	plainWake  chan struct{}      // changed, for plainLoop: only while the journal holds work for it (plainWorkLocked)
	held       int64              // bytes accounted to the journal's entries
	compactAt  int                // journal length that triggers merging runs of done entries
	confirmed  pglogrepl.LSN      // the slot may forget everything before it
	streamEnd  pglogrepl.LSN      // every event up to here was taken into the journal
	gap        bool               // events after streamEnd were dropped: stream the slot again
	fresh      bool               // a new stream after a gap has not delivered a transaction yet
	dropped    int                // counted transactions after streamEnd not in memory
	droppedEnd pglogrepl.LSN      // the last dropped event
	link       int
	synced     bool  // a CatchUp ended with the peer in step, and it has stayed online since
	catching   bool  // CatchUp is running
	resyncErr  error // shipping stopped on this definite error: the peer needs resync
	// peerHeld: the highest lsn of a decision row of this site's that the peer was seen to
	// commit (or the position of its copy of the tables: Resync). A database that is the peer
	// Tandem shipped to never loses it (pruning keeps each site's newest row): a peer whose
	// rows all end before it lacks transactions the slot was confirmed past (checkPeerHolds).
	peerHeld pglogrepl.LSN
	slotLost bool // checkSlot said the slot was invalidated (said once, until Resync)
	// slotRenewed: this Shipper made the slot anew (Resync, a backup's renewal); the next
	// stream starts past what it confirmed, and slotStarts takes that for its own doing.
	slotRenewed bool
	// copyWatch: set while a Resync copies at the first position of the slot it made anew
	// (exportedSlot); add watches there for a transaction prepared before that position and
	// committed after it, which the copy lacks.
	copyWatch *copyWatch
	// renewFails: the backup's renewals of its lost slot that failed in a row (said once, at
	// Error; the tries that follow, every ten seconds or so while a prepared transaction
	// stands, at Debug); cleared when a stream starts (slotStarts). Only the decoder loop's
	// goroutine touches it, and slotStarts, which its stream calls before it ends.
	renewFails int
	lastVerify *VerifyReport
	// copiedAt: the stream position of the last copy of the tables on the peer (Resync), read
	// from the peer once (copiedKnown); what ends before it is in the copy (copiedPoint).
	copiedAt    atomic.Uint64
	copiedKnown atomic.Bool
	runCtx      context.Context // Run's: what outlives a CatchUp (verifyCatchUp)
	verifying   sync.WaitGroup  // verifyCatchUp goroutines
	stats       ShipStats
	// droppedGIDs: the prepared transactions whose PREPARE was dropped (after streamEnd, so
	// a new stream delivers it again) and whose local finish was not seen since, by the
	// position of their PREPARE (see ShipsAlone); under mu. At most as many as may be prepared
	// at once.
	droppedGIDs map[string]pglogrepl.LSN
	// peerMaxPrepared is the peer's max_prepared_transactions, as the apply connections read
	// it when made (0: not known yet); peerSlots, under mu, counts the journal's entries that
	// hold one of them (jentry.peerSlot). Prepare waits while they are all held (waitForPrepare).
	peerMaxPrepared atomic.Int64
	peerSlots       int
}

// entry states
const (
	stPending  = iota // decoded; nothing sent to the peer yet
	stApplying        // Prepare is applying it
	stPrepared        // prepared on the peer
	stUnknown         // a Prepare or commit lost contact: the peer may or may not have it
	stRefused         // the peer refused it (definite)
	stDone            // nothing left to do on the peer for it
)

// entryOverhead is what a journal entry is accounted for besides its values.
const entryOverhead = 64

// jentry is one stream event the slot has not been allowed to forget yet.
type jentry struct {
	pos       pglogrepl.LSN
	end       pglogrepl.LSN // the lsn of its decision row on the peer (Txn.EndLSN); 0: none
	txn       *Txn          // nil for a position-only entry, and once nothing on the peer needs it
	gid       string        // the decision-row key: the gid, or plainGID for plain commits
	size      int64         // accounted in Shipper.held
	state     int
	prepared  bool // arrived at PREPARE (two-phase)
	plain     bool // a plain commit: ship with apply + COMMIT in stream order
	committed bool // prepared: the local COMMIT PREPARED was decoded
	// undo: prepared, rolled back locally while it is, or may be, prepared on the peer; done
	// once ROLLBACK PREPARED ran there.
	undo bool
	// rows: what a later transaction's apply must not run before this one commits on the
	// peer (see rowsOf); kept after txn is released.
	rows       txnRows
	peerCommit bool // Commit(gid) was asked for, or sweep asked in its place
	// opQueued: a COMMIT or ROLLBACK PREPARED for it is queued or running (opLoop). Until it
	// is done the entry is not; one dropped (the queue full) or failed clears it, and sweep
	// asks again from retryAt on.
	opQueued bool
	retryAt  time.Time // when sweep may ask for the peer's COMMIT/ROLLBACK PREPARED; zero: not yet
	opFails  int       // peer operations for it dropped or failed so far
	shipping bool      // plainLoop or CatchUp is shipping it
	// suspect: a backup's own transaction past the bypass boundary (SetBypassFrom) that this
	// site may have committed as master all the same (see settle): a write that bypassed
	// Tandem unless the peer has it. Never shipped; its changes are not held.
	suspect bool
	// peerSlot: it is, or may be, prepared on the peer (from its Prepare on, until known not
	// to be, or done): it holds one of the peer's max_prepared_transactions (Shipper.peerSlots).
	peerSlot bool
}

// finished tells whether the local outcome of e is known.
func (e *jentry) finished() bool { return e.plain || e.committed || e.undo }

type peerOp struct {
	gid    string
	commit bool
}

// NewShipper returns a Shipper; Run starts it.
func NewShipper(cfg ShipperConfig) *Shipper {
	if cfg.Conns <= 0 {
		cfg.Conns = 4
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 10 * time.Second
	}
	if cfg.MaxJournalBytes <= 0 {
		cfg.MaxJournalBytes = 64 << 20
	}
	if cfg.SpillBytes == 0 {
		cfg.SpillBytes = cfg.MaxJournalBytes / 16
	}
	if cfg.SequenceInterval == 0 {
		cfg.SequenceInterval = 5 * time.Second
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "shipper", "site", cfg.Site)
	s := &Shipper{
		cfg:       cfg,
		logger:    logger,
		pool:      newApplyPool(cfg.PeerDSN, cfg.Site, applyAppName, 0, cfg.Conns, logger, cfg.OnPreparedBlocker),
		opPool:    newApplyPool(cfg.PeerDSN, cfg.Site, opAppName, cfg.Conns, opLoops, logger, cfg.OnPreparedBlocker),
		ops:       make(chan peerOp, 1024),
		restart:   make(chan struct{}, 1),
		settleNow: make(chan struct{}, 1),
		byGID:     map[string]*jentry{},
		changed:   make(chan struct{}),
		plainWake: make(chan struct{}),
		compactAt: 1024,
	}
	s.droppedGIDs = map[string]pglogrepl.LSN{}
	s.pool.copied, s.opPool.copied = &s.copied, &s.copied
	s.pool.own, s.opPool.own = &s.own, &s.own
	s.pool.check, s.opPool.check = s.checkApplyConn, s.checkApplyConn
	s.pool.maxPrepared, s.opPool.maxPrepared = &s.peerMaxPrepared, &s.peerMaxPrepared
	s.bypassFrom.Store(math.MaxUint64)
	return s
}

// SetTerm sets the term that transactions shipped from the stream are fenced with on the peer
// (DESIGN §3); prepared transactions carry their own term in their gid. 0 skips the check.
func (s *Shipper) SetTerm(term uint64) { s.term.Store(term) }

// SetBackup tells the Shipper whether its site is the backup. A backup's database receives
// the master's changes under a replication origin, which its decoder skips; a transaction of
// its own in the stream that ends after the position SetBypassFrom gave is a write that bypassed
// Tandem: it is reported (Stats.Bypassed, an error in the log) and let go, never shipped to
// the master's database, so that the slot holds no WAL for it (DESIGN §5.2) — unless the peer
// has it (its decision row): this site committed it as master, and the slot was not confirmed
// past it before the sidecar stopped; that is let go quietly (settle). Transactions before
// that position — what this site committed as master, alone while the peer was away, which
// the decoder may reach only now — stay in the journal for the next catch-up, and so does what
// the journal held already, but for those the peer has (settle). SetBackup(false) (master)
// forgets the position, and that the peer was in step: a master's peer is synced once a
// CatchUp of its own says so.
func (s *Shipper) SetBackup(backup bool) {
	if !backup {
		s.bypassFrom.Store(math.MaxUint64)
		s.abandoning.Store(false)
	}
	s.backup.Store(backup)
	s.mu.Lock()
	if !backup {
		// What an earlier term's catch-up found does not cover what this master commits alone
		// before its own (a promotion that could not reach the peer goes solo): CatchUp would
		// take the peer for synced without holding commits or shipping the tail (DESIGN §5.5).
		s.synced = false
	}
	s.notifyLocked() // plainLoop ships again on a master
	s.mu.Unlock()
}

// SetBypassFrom sets the stream position after which a backup's own transactions (those whose
// commit record ends after it) are writes that bypassed Tandem (see SetBackup): the local
// database's WAL position when the site became backup, its commits as master all done. Until
// it is set, none are. Such transactions the journal took before it was known are let go
// soon (settle): reported as bypasses, but for those the peer has.
func (s *Shipper) SetBypassFrom(lsn pglogrepl.LSN) {
	s.bypassFrom.Store(uint64(lsn))
	if !s.backup.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.journal {
		if e.pos > lsn && e.state == stPending && !e.shipping && !e.undo && !e.suspect && e.gid != "" {
			e.suspect = true
			s.releaseLocked(e)
			n++
		}
	}
	if n > 0 {
		s.kickSettle()
		s.notifyLocked()
	}
}

// Abandon gives up shipping the transactions this site committed that the peer lacks, for
// good: another site became master of a newer term after this one committed alone (DESIGN §3
// split brain, or a forced promotion), and shipped into that term's database later they would
// land after, and over, its master's writes. They stay in the local database only, the slot
// lets go of them, and the number given up is returned (those dropped from memory for the
// journal's bound included). Transactions still prepared locally are left to the resolver.
// Until the site is master again (SetBackup(false)), what the decoder still delivers of them —
// after a restart, say, when the slot is read again — is given up as it comes.
func (s *Shipper) Abandon() int {
	s.abandoning.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.giveUpLocked(0)
	if s.gap {
		// What the journal dropped is given up too: the slot may forget up to the last of it.
		n += s.dropped
		e := &jentry{pos: s.droppedEnd, size: entryOverhead, state: stDone}
		s.journal = append(s.journal, e)
		s.held += e.size
		s.streamEnd = s.droppedEnd
		s.gap, s.dropped = false, 0
		clear(s.droppedGIDs) // past streamEnd no longer: never delivered again
	}
	s.advanceLocked()
	return n
}

// giveUpLocked marks done, never to be shipped, the locally committed transactions in the
// journal whose commit ends after from and that nothing is shipping, and returns how many.
func (s *Shipper) giveUpLocked(from pglogrepl.LSN) int {
	n := 0
	for _, e := range s.journal {
		if e.pos > from && e.state != stDone && !e.shipping && !e.undo && e.finished() {
			n++
			s.markDoneLocked(e)
		}
	}
	return n
}

// ShipsAlone tells whether gid — this site's, prepared on the local database and not finished
// there — is one the next catch-up ships once it is committed locally alone (Shim.CommitAlone):
// its journal entry holds its changes, and it is neither a suspect (a backup's own transaction
// past the bypass boundary, never shipped: settle lets it go as a bypass when the peer lacks
// it) nor given up (Abandon) nor rolled back. A gid whose PREPARE the journal dropped for its
// memory bound (droppedGIDs: after streamEnd, so catch-up's new stream delivers it again) counts
// as yes on a master that gives up nothing (not Abandon): add takes it then as any prepared
// transaction, and its local COMMIT PREPARED after it, and catch-up ships it. Without that, a
// gid that came while the journal was full stayed in doubt with its row locks, holding every
// write to its rows, until the peer database answered again. Any other gid not in memory — one
// the decoder has not reached, or one let go — counts as no.
func (s *Shipper) ShipsAlone(gid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.byGID[gid]
	if e == nil {
		pos, dropped := s.droppedGIDs[gid]
		return dropped && pos > s.streamEnd && !s.backup.Load() && !s.abandoning.Load()
	}
	return e.state != stDone && !e.suspect && !e.undo && !e.finished() && e.txn != nil
}

// Err is the definite error that stopped shipping (the peer diverged and needs resync; it
// wraps ErrNeedsResync), or nil.
func (s *Shipper) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resyncErr
}

// PeerSynced tells whether the peer holds every transaction committed locally, so dual commit
// is possible: true from the end of a successful CatchUp until the peer is next found
// unreachable (or refuses a transaction). A new Shipper is not synced until its first CatchUp,
// though Prepare serves it meanwhile.
func (s *Shipper) PeerSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced && s.link == linkOnline
}

// Backlog is the number of transactions known not to be on the peer yet: those in memory and
// those read from the slot but not held for the memory bound.
func (s *Shipper) Backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.dropped
	for _, e := range s.journal {
		if e.state != stDone && !e.undo && e.gid != "" {
			n++
		}
	}
	return n
}

// Unshipped is Backlog counted up to the moment of the call. Backlog counts what the decoder
// has read: a commit it has not read yet — one the walsender is still decoding (a large one),
// or has not sent — is in neither count, and Backlog said 0 right after a solo commit the peer
// lacked, which status and the master's peer_synced = true (cmd/tandem sayAgain) took for "the
// peer has every commit" (TestBacklogCountsUnread). Unshipped marks the stream on local, the
// local database (currentWAL, as catch-up's rounds do: a transactional logical message, which
// nothing ships), and waits, within ctx, until the decoder has read up to the mark: every
// commit made before the call is counted then. When it cannot tell (the mark cannot be
// written, the decoder does not reach it within ctx) it returns Backlog()+1 — the decoder is
// behind, something may be unread — with the error. It writes to the local database: for a
// master's Shipper only.
func (s *Shipper) Unshipped(ctx context.Context, local *sql.DB) (int, error) {
	until, err := currentWAL(ctx, local)
	if err != nil {
		return s.Backlog() + 1, fmt.Errorf("backlog: %w", err)
	}
	tick := time.NewTicker(100 * time.Millisecond) // add does not notify of dropped events
	defer tick.Stop()
	for {
		s.mu.Lock()
		// Dropped events (a gap) are counted as they are read: droppedEnd is how far that went.
		read := s.streamEnd >= until || (s.gap && s.droppedEnd >= until)
		changed := s.changed
		s.mu.Unlock()
		if read {
			return s.Backlog(), nil
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return s.Backlog() + 1, fmt.Errorf("backlog: the decoder has not read the local stream up to %s: %w", until, ctx.Err())
		}
	}
}

// Stats returns the counters.
func (s *Shipper) Stats() ShipStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Copied = s.copied.Load()
	return st
}

// Run streams the slot and serves the peer until ctx ends; it restarts the decoder after
// failures and returns only when all its goroutines are gone. Run may be active once at a time.
func (s *Shipper) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("txshim: the Shipper is running already")
	}
	s.running, s.runCtx = true, ctx
	s.notifyLocked()
	s.mu.Unlock()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		s.verifying.Wait()
		s.pool.close(ctx)
		s.opPool.close(ctx)
		s.mu.Lock()
		s.running, s.dec = false, nil
		s.notifyLocked()
		s.mu.Unlock()
	}()
	loops := []func(context.Context){s.decodeLoop, s.plainLoop, s.sequenceLoop, s.pruneLoop, s.settleLoop}
	for range opLoops {
		loops = append(loops, s.opLoop)
	}
	for _, f := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	<-ctx.Done()
	return nil
}

// decodeLoop streams the slot with a new decoder each time: after a failure, and when the
// journal dropped events for the memory bound (a gap) and has room again. A new stream starts
// at the slot's confirmed position; add skips what the journal took before.
func (s *Shipper) decodeLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	noSpill := false // the last stream failed writing a spill file: this one holds in memory
	var prev *Decoder
	for ctx.Err() == nil {
		dec := NewDecoder(s.cfg.LocalDSN, s.cfg.Site, s.logger)
		dec.received = &s.received
		dec.started = s.slotStarts
		dec.spillAfter, dec.spillDir = max(s.cfg.SpillBytes, 0), s.cfg.SpillDir
		dec.spillHook = &s.hooks.spillWrite
		if noSpill {
			dec.spillAfter = 0
		}
		s.mu.Lock()
		dec.Confirm(s.confirmed)
		dec.inheritRenames(prev)
		prev = dec
		s.dec = dec
		if s.gap {
			s.gap, s.fresh = false, true
			s.stats.Restarts++
			s.logger.Info("streaming the slot again from its confirmed position", "confirmed", s.confirmed, "held_up_to", s.streamEnd, "not_held", s.dropped)
		}
		s.mu.Unlock()
		start := time.Now()
		restarted, err := s.stream(ctx, dec)
		s.mu.Lock()
		s.dec = nil
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
		if noSpill = errors.Is(err, errSpillWrite); noSpill {
			s.logger.Warn("cannot write a spill file; the next stream holds large transactions in memory", "err", err)
		}
		if restarted {
			backoff = 20 * time.Millisecond // the old stream's walsender may hold the slot a moment
			continue
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		level := slog.LevelWarn
		if pgErrCode(err) == "55006" && backoff < 100*time.Millisecond {
			level = slog.LevelDebug // the slot is still active for the stream just stopped
		}
		if s.checkSlot(ctx) {
			// Said once by checkSlot; tried again slowly, for a slot made anew (Resync).
			level, backoff = slog.LevelDebug, 5*time.Second
		}
		s.logger.Log(ctx, level, "decoder stopped; restarting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-s.restart: // Resync made the slot anew
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// stream runs one decoder, handing its events to add, until the decoder fails, ctx ends or a
// restart is asked for (restarted); it returns once the decoder has returned. The decoder calls
// add on its own goroutine: a channel between them cost a goroutine wake-up (and often another
// thread's) per event, two or three per dual commit. Once a restart is asked for and the
// decoder cancelled, it adds nothing more: what it decoded after is after streamEnd, and the
// next stream sends it again.
func (s *Shipper) stream(ctx context.Context, dec *Decoder) (restarted bool, err error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- dec.run(rctx, func(ev Event) error {
			if err := rctx.Err(); err != nil {
				return err
			}
			s.add(ev)
			return nil
		})
	}()
	select {
	case err := <-done:
		return false, err
	case <-s.restart:
		cancel()
		<-done
		return true, nil
	case <-ctx.Done():
		cancel()
		<-done
		return false, ctx.Err()
	}
}

// eventSize is what an event is accounted for in the journal: its changes held in memory
// (a spilled part only for its bookkeeping: spill.go).
func eventSize(ev Event) int64 {
	n := int64(entryOverhead)
	if ev.Txn == nil {
		return n
	}
	for _, c := range ev.Txn.Changes {
		n += changeSize(c)
	}
	if ev.Txn.spill != nil {
		n += spillOverhead
	}
	return n
}

// changeSize is what one change held in memory is accounted for.
func changeSize(c Change) int64 {
	n := int64(48)
	for _, v := range c.Old {
		n += 16 + int64(len(v.Data))
	}
	for _, v := range c.New {
		n += 16 + int64(len(v.Data))
	}
	return n
}

// add takes a stream event into the journal, or drops it when the journal is full (DESIGN
// §5.5: the slot is the journal; catch-up reads dropped events from the slot again).
func (s *Shipper) add(ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.copyWatch.see(ev) {
		s.lacksLocked(s.copyWatch)
	}
	if ev.Pos <= s.streamEnd {
		if ev.Finish != nil {
			delete(s.droppedGIDs, ev.Finish.GID) // a dropped PREPARE the copy took (Resync)
		}
		return // sent again by a new stream: the journal has it, or had it
	}
	counted := ev.Txn != nil && (ev.Txn.Prepared || ev.Txn.Len() > 0)
	size := eventSize(ev)
	if !s.gap && !s.roomLocked(size) {
		s.gap = true
		log := s.logger.Warn
		if s.link == linkCatchUp {
			log = s.logger.Debug // expected while catching up a long backlog
		}
		log("journal full: the transactions that follow stay in the slot until catch-up",
			"held_bytes", s.held, "max_bytes", s.cfg.MaxJournalBytes, "link", linkName(s.link))
		s.goDownLocked("the journal is full", nil)
	}
	if s.gap {
		if ev.Pos > s.droppedEnd {
			s.droppedEnd = ev.Pos
			if counted {
				s.dropped++
				s.stats.Dropped++
			}
		}
		switch {
		case ev.Txn != nil && ev.Txn.Prepared:
			// Only one that add would take now as any prepared transaction (see below): not
			// a backup's suspect or one given up (Abandon), which ShipsAlone says no to.
			if !s.backup.Load() || (uint64(ev.Pos) <= s.bypassFrom.Load() && !s.abandoning.Load()) {
				s.droppedGIDs[ev.Txn.GID] = ev.Pos
			}
		case ev.Finish != nil:
			delete(s.droppedGIDs, ev.Finish.GID)
		}
		return
	}
	switch {
	case ev.Txn != nil && ev.Txn.Prepared:
		delete(s.droppedGIDs, ev.Txn.GID) // taken now, or let go as add decides below
	case ev.Finish != nil:
		delete(s.droppedGIDs, ev.Finish.GID)
	}
	if counted {
		if ev.Txn.spill != nil {
			s.stats.Spilled++
		}
		s.fresh = false
		if ev.Pos <= s.droppedEnd && s.dropped > 0 {
			s.dropped--
		}
	}
	s.streamEnd = ev.Pos
	e := &jentry{pos: ev.Pos, size: size, state: stDone}
	bypass := uint64(ev.Pos) > s.bypassFrom.Load()
	if counted && s.backup.Load() && bypass && s.mayBeOwn(ev.Txn) {
		// Perhaps this site's own as master, which the peer has (see settle): decided there.
		e.state, e.suspect, e.prepared, e.plain = stPending, true, ev.Txn.Prepared, !ev.Txn.Prepared
		e.size = entryOverhead
		if e.prepared {
			e.gid = ev.Txn.GID
			s.byGID[e.gid] = e
		} else {
			e.gid = plainGID(s.cfg.Site, ev.Txn.XID)
		}
		s.journal = append(s.journal, e)
		s.held += e.size
		s.kickSettle()
		s.advanceLocked()
		return
	}
	if counted && s.backup.Load() && (bypass || s.abandoning.Load()) {
		if bypass {
			s.stats.Bypassed++
			s.logger.Error("a write bypassed Tandem on this backup's database: not shipped; the databases differ (tandem verify)",
				"xid", ev.Txn.XID, "changes", ev.Txn.Len(), "prepared", ev.Txn.Prepared)
		} else {
			s.logger.Warn("split brain: a transaction committed alone here is not shipped (Abandon)", "xid", ev.Txn.XID, "prepared", ev.Txn.Prepared)
		}
		ev = Event{Pos: ev.Pos}
		e.size = entryOverhead
	}
	switch {
	case ev.Txn != nil && ev.Txn.Prepared:
		e.txn, e.gid, e.prepared, e.state, e.end = ev.Txn, ev.Txn.GID, true, stPending, ev.Txn.EndLSN
		e.rows = rowsOf(ev.Txn)
		if old, ok := s.byGID[e.gid]; ok && old.state != stDone {
			s.logger.Error("gid prepared twice in the stream", "gid", e.gid)
		}
		s.byGID[e.gid] = e
	case ev.Txn != nil && ev.Txn.Len() > 0:
		e.txn, e.gid, e.plain, e.state, e.end = ev.Txn, plainGID(s.cfg.Site, ev.Txn.XID), true, stPending, ev.Txn.EndLSN
		e.rows = rowsOf(ev.Txn)
	case ev.Txn != nil:
		e.size = entryOverhead // an empty plain commit: nothing to ship
	case ev.Finish != nil:
		s.finishLocked(ev.Finish)
	}
	s.journal = append(s.journal, e)
	s.held += e.size
	s.advanceLocked()
}

// mayBeOwn tells whether txn, found in a backup's stream, may be one this site committed as
// master: a plain commit (shipped with a decision row plainGID, as a master ships every plain
// commit), or a prepared transaction whose gid is this site's (DESIGN §5.3). Another prepared
// transaction was never Tandem's.
func (s *Shipper) mayBeOwn(txn *Txn) bool {
	if !txn.Prepared {
		return true
	}
	site, _, _, ok := parseGID(txn.GID)
	return ok && site == s.cfg.Site
}

func (s *Shipper) kickSettle() {
	select {
	case s.settleNow <- struct{}{}:
	default:
	}
}

// roomLocked tells whether the journal takes an event of size bytes. It takes any one event
// while at most half full, and a new stream's first transaction in any case, so that a
// restarted stream always makes progress, however large a transaction or however much
// in-doubt transactions hold.
func (s *Shipper) roomLocked(size int64) bool {
	limit := s.cfg.MaxJournalBytes
	fits := func() bool { return s.held+size <= limit || s.held <= limit/2 }
	if s.fresh || fits() {
		return true
	}
	s.compactLocked() // runs of done entries behind an unfinished one
	return fits()
}

// finishLocked records the local COMMIT or ROLLBACK PREPARED of a transaction in the journal.
func (s *Shipper) finishLocked(f *Finish) {
	e, ok := s.byGID[f.GID]
	if !ok || e.state == stDone {
		return // finished a transaction shipped before (or one that came from the other site)
	}
	if !f.Committed {
		switch e.state {
		case stPrepared, stUnknown, stApplying:
			// It is, or may be, prepared on the peer: undo it there.
			e.undo = true
			s.releaseLocked(e)
			if e.state != stApplying {
				s.askLocked(e, peerOp{gid: e.gid})
			}
		default:
			s.markDoneLocked(e)
		}
		return
	}
	e.committed = true
	if e.retryAt.IsZero() {
		// Its session asks for the peer's COMMIT PREPARED right after the local one, often
		// after the decoder saw it; if it does not (it died, or recovery committed it
		// locally), sweep asks after commitGrace.
		e.retryAt = time.Now().Add(commitGrace)
	}
	// A committed transaction that was never prepared on the peer (pending), or whose peer
	// outcome is unknown, is shipped from the stream (plainLoop, CatchUp).
}

func (s *Shipper) releaseLocked(e *jentry) {
	if e.txn != nil {
		s.held -= e.size - entryOverhead
		e.size = entryOverhead
		e.txn = nil
	}
}

// peerHasLocked records that the peer committed e's decision row (or holds e in its copy of
// the tables, whose row is later in the stream).
func (s *Shipper) peerHasLocked(e *jentry) {
	s.peerHeld = max(s.peerHeld, e.end)
}

func (s *Shipper) markDoneLocked(e *jentry) {
	e.state = stDone
	s.releaseLocked(e)
	s.freePeerSlotLocked(e)
}

// freePeerSlotLocked records that e is not prepared on the peer (any more): the peer's
// prepared transaction it held is free for another Prepare.
func (s *Shipper) freePeerSlotLocked(e *jentry) {
	if e.peerSlot {
		e.peerSlot = false
		s.peerSlots--
	}
}

// peerSlotsBesides tells whether entries other than e hold some of the peer's prepared
// transactions.
func (s *Shipper) peerSlotsBesides(e *jentry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.peerSlots
	if e.peerSlot {
		n--
	}
	return n > 0
}

// peerFullLocked tells whether every one of the peer's prepared transactions (its
// max_prepared_transactions, when known) is held by an entry prepared, or perhaps prepared,
// there.
func (s *Shipper) peerFullLocked() bool {
	limit := s.peerMaxPrepared.Load()
	return limit > 0 && int64(s.peerSlots) >= limit
}

func (s *Shipper) forgetLocked(e *jentry) {
	s.freePeerSlotLocked(e)
	s.held -= e.size
	if e.prepared && s.byGID[e.gid] == e {
		delete(s.byGID, e.gid)
	}
}

func (s *Shipper) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
	if s.plainWorkLocked() {
		close(s.plainWake)
		s.plainWake = make(chan struct{})
	}
}

// plainWorkLocked tells whether the journal holds an entry nextToShipLocked may return to
// plainLoop, what may hold it back aside. Without one plainLoop has nothing to ship whatever
// else changed, and is not woken (notifyLocked): it was, for every change of the journal, four
// or five times per dual commit, none of which it ships.
func (s *Shipper) plainWorkLocked() bool {
	for _, e := range s.journal {
		switch {
		case e.state == stDone || !e.finished() || e.suspect:
		case e.shipping || e.state == stApplying:
		case !e.plain && (e.undo || e.state == stPrepared):
		default:
			return true
		}
	}
	return false
}

// advanceLocked confirms the slot past the done prefix of the journal, merges runs of done
// entries now and then (so an in-doubt transaction at the head does not pin a growing list),
// asks for a new stream when catch-up needs the dropped events, and wakes waiters.
func (s *Shipper) advanceLocked() {
	n := 0
	for n < len(s.journal) && s.journal[n].state == stDone {
		s.confirmed = max(s.confirmed, s.journal[n].pos)
		s.forgetLocked(s.journal[n])
		s.journal[n] = nil
		n++
	}
	if n > 0 {
		s.journal = s.journal[n:]
		if s.dec != nil {
			s.dec.Confirm(s.confirmed)
		}
	}
	if len(s.journal) >= s.compactAt {
		s.compactLocked()
	}
	// Restarting re-reads what the journal still holds: wait until most of it is shipped
	// (drain also asks when nothing before the gap is left to ship). A backup ships nothing,
	// but settle lets go of what the peer has: past a gap, its slot goes on only if what
	// follows is read again.
	if s.gap && (s.link == linkCatchUp || s.backup.Load()) && s.held <= s.cfg.MaxJournalBytes/4 {
		s.restartLocked()
	}
	s.notifyLocked()
}

// compactLocked merges each run of done entries into its last one (the latest position).
func (s *Shipper) compactLocked() {
	out := s.journal[:0]
	for i, e := range s.journal {
		if e.state == stDone && i+1 < len(s.journal) && s.journal[i+1].state == stDone {
			s.forgetLocked(e)
			continue
		}
		out = append(out, e)
	}
	clear(s.journal[len(out):])
	s.journal = out
	s.compactAt = max(2*len(out), 1024)
}

// restartLocked asks decodeLoop for a new stream from the slot's confirmed position.
func (s *Shipper) restartLocked() {
	select {
	case s.restart <- struct{}{}:
	default:
	}
}

// goDownLocked stops shipping until CatchUp after the peer was unreachable (DESIGN §5.5): from
// now on the slot keeps what the peer lacks, and the journal holds only up to its bound. Only
// an online Shipper goes down: a catch-up in progress deals with failures itself.
func (s *Shipper) goDownLocked(why string, err error) {
	if s.link != linkOnline {
		return
	}
	s.link, s.synced = linkDown, false
	s.logger.Warn("peer not in step: shipping waits for catch-up", "why", why, "err", err)
	s.notifyLocked()
}

// Down takes the Shipper out of step with the peer, as a failed apply does: dual commits are
// refused at once (errNotInStep) rather than wait for what came before them to reach a peer
// that does not take it, until a catch-up. For a promotion that found the peer not in step.
func (s *Shipper) Down(why string, err error) { s.goDown(why, err) }

func (s *Shipper) goDown(why string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.goDownLocked(why, err)
}

// enqueue queues op for opLoop and tells whether it did: not when the queue is full.
func (s *Shipper) enqueue(op peerOp) bool {
	select {
	case s.ops <- op:
		return true
	default:
		s.logger.Warn("peer operation queue full; the operation is asked for again later", "gid", op.gid, "commit", op.commit)
		return false
	}
}

// askLocked queues op, the peer's COMMIT or ROLLBACK PREPARED of e (nil: gid not in the
// journal). An op the queue drops is asked for again by sweep, as one that fails is.
func (s *Shipper) askLocked(e *jentry, op peerOp) {
	queued := s.enqueue(op)
	if e == nil || e.state == stDone {
		return
	}
	if queued {
		e.opQueued = true
		return
	}
	s.opFailedLocked(e)
}

// opFailedLocked records that the peer operation asked for e was dropped or failed: sweep asks
// again after commitGrace, twice as long after each failure up to 16 times as long.
func (s *Shipper) opFailedLocked(e *jentry) {
	e.opQueued = false
	e.opFails++
	e.retryAt = time.Now().Add(commitGrace << min(e.opFails-1, 4))
}

// Prepare implements Peer: it waits for gid's decoded changes and for every plain commit
// before it in the stream to be shipped (DESIGN §5.2 "Order on the peer"), then applies them on
// the peer and prepares gid there, all in one round trip. While the peer is not in step
// (down, or catching up) it refuses at once with an unknown-outcome PeerError, and any unknown
// outcome takes the Shipper down: the shim then commits alone and CatchUp ships it later.
func (s *Shipper) Prepare(ctx context.Context, gid string) error {
	start := time.Now()
	// The peer refused a transaction of this term shipped from the stream (DESIGN §3): its
	// term record is newer, or this term's of another master. It refuses this one too, and
	// says so definitely: not the unknown outcome of a peer not in step (the Shipper is down
	// since), which would have the shim go solo and commit alone on this site's database in
	// a term the peer's record gives another master (TestPeerTermRefusalNoSolo).
	if perr := s.refusedFor(gid); perr != nil {
		return perr
	}
	e, txn, err := s.waitForPrepare(ctx, gid)
	if err != nil {
		// So too when the refusal came while this waited for a plain commit before gid (the
		// refused one, say): it took the Shipper down under the wait, which ends "not in
		// step" (TestPeerTermRefusalWhilePrepareWaits). shipped notes the refusal before it
		// takes the Shipper down, both under s.mu.
		if perr := s.refusedFor(gid); perr != nil {
			return perr
		}
		s.goDown("prepare "+gid, err)
		return &PeerError{GID: gid, Step: "wait", Definite: false, Err: err}
	}
	// The apply may take longer than ctx allows by txn's size allowance; after a wait for a
	// decoder that was behind, it gets its whole time anew.
	extra := sizeAllowance(txn)
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		extra += time.Since(start)
	}
	actx, cancel := withExtraTime(ctx, extra)
	defer cancel()
	_, term, _, _ := parseGID(gid)
	var definite bool
	var moved []uint32
	for pause := transientPause; ; pause = min(2*pause, transientPauseMax) {
		slot, gerr := s.pool.get(actx)
		if gerr != nil {
			s.setState(e, stPending)
			s.goDown("prepare "+gid, gerr)
			return &PeerError{GID: gid, Step: "connect", Definite: false, Err: gerr}
		}
		err = slot.c.apply(actx, txn, gid, term, endPrepare)
		definite = err != nil && isDefinite(err) && !preparedDisabled(err)
		full := preparedFull(err) && s.peerSlotsBesides(e)
		moved = slot.c.moved
		s.pool.put(ctx, slot, err != nil && !definite && !full)
		if full {
			// The peer's prepared transactions are all taken, some by others than this
			// Shipper's (counted in waitForPrepare): ones left in doubt for the resolver,
			// another database's. Back-pressure, not the peer gone, while others of its own
			// hold some, whose COMMIT PREPAREDs free them: the peer kept nothing of it. With
			// none of its own there, nothing it waits for frees one: the peer is out of step
			// at once, as before (TestPeerPreparedSlotsForeignOnly).
			s.logger.Warn("the peer has no prepared transaction free (max_prepared_transactions); asking again", "gid", gid, "err", err)
		} else if !definite || !transient(err) {
			break
		} else {
			// Refused for the moment (a deadlock, a cancel): the peer kept nothing of it. Ask
			// again while the commit's time lasts, rather than fail the client's transaction.
			s.logger.Warn("the peer refused a prepare for the moment; asking again", "gid", gid, "err", err)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
			continue
		case <-actx.Done():
			t.Stop()
		}
		break
	}
	switch {
	case err == nil:
		s.prepared(e, moved)
		return nil
	case definite:
		s.setState(e, stRefused)
		return &PeerError{GID: gid, Step: "apply", Definite: true, Err: err}
	case preparedFull(err), preparedDisabled(err):
		// Still no prepared transaction free on the peer when the commit's time ran out, or
		// none of this Shipper's there to free one: a peer that slow, or that full of others',
		// is out of step, as after a timeout; it kept nothing of this one. So is a peer that
		// takes none at all, not a refusal of this transaction's rows.
		s.setState(e, stPending)
		s.goDown("prepare "+gid, err)
		return &PeerError{GID: gid, Step: "apply", Definite: false, Err: err}
	default:
		s.setState(e, stUnknown)
		s.goDown("prepare "+gid, err)
		return &PeerError{GID: gid, Step: "apply", Definite: false, Err: err}
	}
}

// preparedFull tells whether err is the peer's refusal of a PREPARE TRANSACTION for its
// max_prepared_transactions all taken ("maximum number of prepared transactions reached",
// SQLSTATE 53200, out of memory; the transaction rolled back there, the session idle). It is
// told from the other refusals of that code by the function that raised it (raisedBy), not by
// the message, which a peer writes in its lc_messages' language (TestPreparedFullTranslated).
func preparedFull(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "53200" && raisedBy(pgErr, "MarkAsPreparing", "prepared transactions")
}

// preparedDisabled tells whether err is the peer's refusal of a PREPARE TRANSACTION for
// prepared transactions being disabled there (max_prepared_transactions = 0, set since
// install, SQLSTATE 55000): the peer can take no dual commit and kept nothing of this one,
// which is no divergence (TestPeerPreparedDisabled).
func preparedDisabled(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55000" && strings.Contains(pgErr.Message, "prepared transactions are disabled")
}

// A prepare the peer refused for the moment (transient) is asked again after transientPause,
// twice as long each time up to transientPauseMax, while the commit's time lasts.
const (
	transientPause    = 20 * time.Millisecond
	transientPauseMax = 500 * time.Millisecond
)

// sizeAllowance is the time a transaction's apply may take on top of the usual bound: one
// second per MiB of changes (spilled ones included), so that a bulk load (a COPY of 100 000
// rows) is not taken for an unreachable peer; and, for a transaction with DDL through the shim,
// twice the time from its first DDL to its end on the local database, which the peer may need
// too (an index built on a large table), so that it is not cut off on every try.
func sizeAllowance(txn *Txn) time.Duration {
	if txn == nil {
		return 0
	}
	n := eventSize(Event{Txn: txn})
	if txn.spill != nil {
		n += txn.spill.size
	}
	extra := time.Duration(n>>20) * time.Second
	if !txn.ddlAt.IsZero() && txn.Time.After(txn.ddlAt) {
		extra += 2 * txn.Time.Sub(txn.ddlAt)
	}
	return extra
}

// withExtraTime returns ctx with its deadline, if it has one, moved later by extra;
// cancelling ctx for any other reason than its deadline still cancels it.
func withExtraTime(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if extra == 0 || !ok {
		return context.WithCancel(ctx)
	}
	actx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl.Add(extra))
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return actx, func() { stop(); cancel() }
}

// txnRows sums up, for the order of applies on the peer, which tables a transaction makes rows
// appear in and which it updates or deletes rows of.
type txnRows struct {
	// barrier: a TRUNCATE or DDL; it orders against every transaction around it.
	barrier bool
	// appear: tables in which rows appear under a replica-identity value that the peer cannot
	// see until the transaction commits there: inserts, updates that changed the key, and
	// every update of a REPLICA IDENTITY FULL table (its whole row is the key).
	appear []uint32
	// change: tables it updates or deletes rows of, found by replica identity.
	change []uint32
}

func addRel(set []uint32, id uint32) []uint32 {
	for _, x := range set {
		if x == id {
			return set
		}
	}
	return append(set, id)
}

func rowsOf(txn *Txn) txnRows {
	var r txnRows
	for _, c := range txn.Changes {
		r.add(c)
	}
	if sp := txn.spill; sp != nil {
		r.barrier = r.barrier || sp.rows.barrier
		for _, id := range sp.rows.appear {
			r.appear = addRel(r.appear, id)
		}
		for _, id := range sp.rows.change {
			r.change = addRel(r.change, id)
		}
	}
	return r
}

// add takes one change of the transaction into r.
func (r *txnRows) add(c Change) {
	switch c.Kind {
	case ChangeInsert:
		if c.Rel.Namespace == "tandem" && c.Rel.Name == "ddl" {
			r.barrier = true
		}
		r.appear = addRel(r.appear, c.Rel.ID)
	case ChangeUpdate:
		if c.Old != nil || c.Rel.ReplicaIdentity == 'f' {
			r.appear = addRel(r.appear, c.Rel.ID)
		}
		r.change = addRel(r.change, c.Rel.ID)
	case ChangeDelete:
		r.change = addRel(r.change, c.Rel.ID)
	default:
		r.barrier = true
	}
}

// waitsFor tells whether e's apply on the peer (Prepare, or shipping it from the stream) must
// wait for p, before it in the stream. A commit whose rows e may change must be committed on
// the peer first, not only prepared there: a row it inserted is invisible on the peer until
// its COMMIT PREPARED, so e's UPDATE or DELETE of that row would miss (a departure from DESIGN
// §5.2, which lets prepared-only predecessors pass; found by TestDualOrderInsertThenDelete,
// TestPlainAfterDualCommit and the e2e tests). What is shipped from the stream always comes
// first (fromStream).
func (e *jentry) waitsFor(p *jentry) bool {
	return p.state != stDone && (p.fromStream() || (p.committed && e.rows.mustFollow(&p.rows)))
}

// fromStream tells whether p reaches the peer from the stream (plainLoop, CatchUp), applied
// there only when its turn comes: a plain commit, or a prepared transaction committed locally
// without being prepared on the peer (one left in doubt and committed by the resolver or an
// operator, `tandem resolve -commit`), or whose copy there was found rolled back (opEnded:
// errNotOnPeer) and is applied anew. Such a one holds no row lock on the peer until it is
// applied, so a later transaction's change of a row it updated in place does not wait for it
// there, as mustFollow supposes: applied first, it was overwritten by the older change
// (TestDualOrderAfterStreamShippedPrepared).
func (p *jentry) fromStream() bool {
	return p.plain || (p.committed && p.state != stPrepared)
}

// mustFollow tells whether the apply of a transaction with rows r must wait until an earlier
// one with rows p, committed locally, is committed on the peer. A row p made appear (inserted,
// or given a new key) is invisible on the peer until then, so r's UPDATE or DELETE of it would
// miss; a row p only updated in place is found, and r's change waits for p's row lock on the
// peer instead (DESIGN §5.2 "Order on the peer").
func (r *txnRows) mustFollow(p *txnRows) bool {
	if r.barrier || p.barrier {
		return true
	}
	for _, a := range p.appear {
		for _, c := range r.change {
			if a == c {
				return true
			}
		}
	}
	return false
}

// errNotInStep: Prepare or WaitShipped was asked while the peer is not in step (down, catching
// up, or stopped for resync); the slot keeps what it lacks.
var errNotInStep = errors.New("the peer is not in step: dual commit waits for catch-up")

// waitForPrepare returns gid's entry, marked stApplying, and its changes.
func (s *Shipper) waitForPrepare(ctx context.Context, gid string) (*jentry, *Txn, error) {
	// The decoder may be behind: a large transaction before this one still streaming from the
	// local slot. That is the local database's pace, not the peer failing, so past ctx's
	// deadline the wait for this gid's changes goes on while the decoder reads on (checked
	// every decodeGrace), for at most decodeLagMax more: a departure from DESIGN §5.3, where
	// any timeout means the peer is down. Cancelling ctx ends it at once.
	wctx, cancel := withExtraTime(ctx, decodeLagMax)
	defer cancel()
	var expired <-chan time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expired = t.C
	}
	read := s.received.Load()
	var full bool // ready but for the peer's prepared transactions, all held
	timeout := func(found bool) error {
		if full {
			return fmt.Errorf("%s waited for one of the peer's prepared transactions (max_prepared_transactions %d, all held by dual commits whose COMMIT PREPARED there is still to come): %w",
				gid, s.peerMaxPrepared.Load(), context.DeadlineExceeded)
		}
		if found {
			return fmt.Errorf("transactions before %s it must follow are not on the peer yet (plain commits not shipped, or a prepared one not finished there): %w", gid, context.DeadlineExceeded)
		}
		return fmt.Errorf("no decoded changes for %s from the local slot yet: %w", gid, context.DeadlineExceeded)
	}
	for {
		s.mu.Lock()
		if s.link != linkOnline {
			link := s.link
			s.mu.Unlock()
			return nil, nil, fmt.Errorf("%w (%s)", errNotInStep, linkName(link))
		}
		e, ok := s.byGID[gid]
		ready, behind := false, false
		full = false
		var txn *Txn
		if ok {
			if e.state != stPending || e.finished() {
				s.mu.Unlock()
				return nil, nil, fmt.Errorf("transaction %s is already %s", gid, stateName(e.state))
			}
			ready = true
			for _, p := range s.journal {
				if p == e {
					break
				}
				if e.waitsFor(p) {
					// behind: a plain commit before it (or another transaction shipped from
					// the stream), which plainLoop ships in stream order — a large one takes
					// its size's time (shipOne bounds it), not a sign of the peer failing.
					ready, behind = false, p.fromStream()
					break
				}
			}
			// The peer takes at most max_prepared_transactions prepared at once, and the
			// COMMIT PREPAREDs that free them run after the clients' replies (DESIGN §5.3
			// step 3): under load they fall behind the prepares. Its PREPARE would fail
			// (53200) for the Shipper's own pipeline outrunning the peer, not for the peer
			// being gone: wait for one, within the commit's time, as for an earlier
			// transaction (TestPeerPreparedSlots).
			if ready && s.peerFullLocked() {
				ready, full = false, true
			}
			if ready {
				e.state, txn = stApplying, e.txn
				e.peerSlot = true
				s.peerSlots++
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if ready {
			return e, txn, nil
		}
		select {
		case <-changed:
		case <-wctx.Done():
			if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return nil, nil, fmt.Errorf("wait for %s: %w", gid, err)
			}
			return nil, nil, timeout(ok)
		case <-expired:
			if now := s.received.Load(); (!ok && now != read) || behind {
				read = now
				expired = time.After(decodeGrace)
				continue
			}
			return nil, nil, timeout(ok)
		}
	}
}

// decodeGrace and decodeLagMax bound how long a commit waits past its timeout for a decoder
// that is behind but reading (waitForPrepare).
const (
	decodeGrace  = time.Second
	decodeLagMax = 30 * time.Second
)

// CommitWaitMax is how long a dual commit may wait for the peer's prepare, given the shim's
// commit timeout: past it, for a decoder that is behind but reading, up to decodeLagMax more
// (a large transaction's allowance of a second per MiB of its changes not counted). A pass of
// the resolver in another process (tandem resolve) leaves alone what was prepared more
// recently: a running shim may still be committing it.
func CommitWaitMax(commitTimeout time.Duration) time.Duration {
	return commitTimeout + decodeGrace + decodeLagMax
}

func stateName(st int) string {
	return [...]string{"pending", "being applied", "prepared on the peer", "of unknown outcome on the peer", "refused by the peer", "done"}[st]
}

func (s *Shipper) setState(e *jentry, st int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.state == stDone {
		return
	}
	e.state = st
	if st == stPending || st == stRefused {
		s.freePeerSlotLocked(e) // its apply kept nothing on the peer
	}
	switch {
	case e.undo && (st == stPrepared || st == stUnknown):
		s.askLocked(e, peerOp{gid: e.gid}) // rolled back locally meanwhile
	case e.undo:
		s.markDoneLocked(e)
	case st == stPrepared && e.peerCommit:
		s.askLocked(e, peerOp{gid: e.gid, commit: true})
	}
	s.advanceLocked()
}

// prepared marks e prepared on the peer, where its apply may have moved rows of the tables
// moved: a later transaction's change of those must wait for e's commit there as for a row e
// inserted (txnRows.appear), which the changes decoded do not show — locally the row stayed
// in place. Recorded before the session's local COMMIT PREPARED, so before any transaction that
// changes the row after it is decoded (waitForPrepare).
func (s *Shipper) prepared(e *jentry, moved []uint32) {
	if len(moved) > 0 {
		s.mu.Lock()
		for _, id := range moved {
			e.rows.appear = addRel(e.rows.appear, id)
		}
		s.mu.Unlock()
	}
	s.setState(e, stPrepared)
}

// Commit implements Peer: COMMIT PREPARED gid on the peer, asynchronously.
func (s *Shipper) Commit(gid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byGID[gid]
	if ok {
		e.peerCommit = true
	}
	s.askLocked(e, peerOp{gid: gid, commit: true})
}

// Rollback implements Peer: ROLLBACK PREPARED gid on the peer, asynchronously, if it is there.
func (s *Shipper) Rollback(gid string) { s.enqueue(peerOp{gid: gid}) }

// opLoops is the number of goroutines (and connections) running COMMIT/ROLLBACK PREPARED.
const opLoops = 2

// opLoop runs queued COMMIT/ROLLBACK PREPARED on the peer.
func (s *Shipper) opLoop(ctx context.Context) {
	for {
		select {
		case op := <-s.ops:
			s.runOp(ctx, op)
		case <-ctx.Done():
			return
		}
	}
}

func (s *Shipper) runOp(ctx context.Context, op peerOp) {
	if peerOp := s.hooks.peerOp.get(); peerOp != nil {
		peerOp(op.gid, op.commit)
	}
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	verb := "ROLLBACK PREPARED"
	if op.commit {
		verb = "COMMIT PREPARED"
	}
	slot, err := s.opPool.get(octx)
	if err != nil {
		s.logger.Warn("peer unreachable; catch-up or recovery will finish the transaction", "gid", op.gid, "op", verb, "err", err)
		s.goDown(verb+" "+op.gid, err)
		s.opEnded(op, err)
		return
	}
	err = finishPrepared(octx, slot.c, op.gid, op.commit)
	definite := err != nil && (isDefinite(err) || errors.Is(err, errDiverged) || errors.Is(err, errNotOnPeer))
	s.opPool.put(octx, slot, err != nil && !definite)
	switch {
	case err == nil, ctx.Err() != nil:
	case definite:
		// 55000 "prepared transaction … is busy": the resolver is finishing it there; asked
		// again, COMMIT PREPARED then finds it committed (its decision row).
		s.logger.Warn("peer "+verb+" failed; it is asked for again later", "gid", op.gid, "err", err)
	default:
		s.logger.Warn("peer "+verb+" failed; catch-up or recovery will finish the transaction", "gid", op.gid, "err", err)
		s.goDown(verb+" "+op.gid, err)
	}
	s.opEnded(op, err)
}

// opEnded records the outcome of op, run by opLoop, in the journal. Success finishes the
// entry; after a failure sweep asks again while the peer is online, and catch-up ships the
// entry otherwise. Two outcomes are not retried: a COMMIT PREPARED that found the transaction
// neither prepared nor committed on the peer (rolled back there by recovery) leaves it to be
// shipped from the stream, applied anew (shipOn); a ROLLBACK PREPARED of one committed there
// is a divergence.
func (s *Shipper) opEnded(op peerOp, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byGID[op.gid]
	if !ok || e.state == stDone {
		return
	}
	switch {
	case err == nil:
		e.opQueued = false
		if (op.commit && (e.state == stPrepared || e.state == stUnknown)) || (!op.commit && e.undo) {
			if op.commit {
				s.peerHasLocked(e)
			}
			s.markDoneLocked(e)
			s.advanceLocked()
		}
		return
	case !op.commit && e.undo && errors.Is(err, errDiverged):
		e.opQueued = false
		s.divergedLocked(op.gid, "it committed on the peer, but rolled back locally", err)
		s.advanceLocked()
		return
	case op.commit && !e.undo && e.state == stPrepared && errors.Is(err, errNotOnPeer):
		e.opQueued = false
		e.state = stUnknown
		s.freePeerSlotLocked(e) // not prepared there any more
		s.advanceLocked()
		return
	}
	s.opFailedLocked(e)
}

// errNotOnPeer: COMMIT PREPARED found neither the prepared transaction nor its decision row.
var errNotOnPeer = errors.New("neither prepared nor committed on the peer")

// errDiverged marks a definite divergence found by the Shipper itself.
var errDiverged = errors.New("divergence")

// finishPrepared runs COMMIT (or ROLLBACK) PREPARED gid on the peer. When no such prepared
// transaction is there, the decision row tells what happened: for a commit, committed before
// (nil) or never there (errNotOnPeer); for a rollback, nothing to undo (nil), or committed on
// the peer while the local side rolled it back (errDiverged).
func finishPrepared(ctx context.Context, c *applyConn, gid string, commit bool) error {
	verb := "ROLLBACK PREPARED "
	if commit {
		verb = "COMMIT PREPARED "
	}
	_, err := c.conn.Exec(ctx, verb+sqlLiteral(gid)).ReadAll()
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "42704" { // 42704: no such prepared transaction
		return err
	}
	_, decided, err := peerTxnState(ctx, c, gid)
	switch {
	case err != nil:
		return err
	case commit && decided:
		return nil
	case commit:
		return fmt.Errorf("commit %s on the peer: %w", gid, errNotOnPeer)
	case decided:
		return fmt.Errorf("roll back %s on the peer: it committed there but was rolled back locally: %w", gid, errDiverged)
	}
	return nil
}

// peerTxnState tells whether gid is prepared on the peer and whether its decision row is
// committed there.
func peerTxnState(ctx context.Context, c *applyConn, gid string) (prepared, decided bool, err error) {
	rr := c.conn.ExecParams(ctx, `SELECT EXISTS (SELECT 1 FROM pg_prepared_xacts WHERE gid = $1 AND database = current_database()),
  EXISTS (SELECT 1 FROM tandem.decisions WHERE gid = $1)`, [][]byte{[]byte(gid)}, nil, nil, nil)
	for rr.NextRow() {
		v := rr.Values()
		prepared, decided = string(v[0]) == "t", string(v[1]) == "t"
	}
	if _, err := rr.Close(); err != nil {
		return false, false, fmt.Errorf("look up %s on the peer: %w", gid, err)
	}
	return prepared, decided, nil
}

// WaitShipped waits until transaction xid, committed plainly on the local database before the
// stream position mark (that of a later transaction), has been shipped to the peer: the stream
// reached mark, and no plain commit of xid is left to ship — none was in the stream (it changed
// nothing shipped), or it is committed on the peer. It fails with errNotInStep as soon as the
// Shipper stops shipping (the journal then keeps the transaction for catch-up). xid 0 (no
// transaction has it) waits for every plain commit before mark. Out of time (ctx's deadline)
// it takes the Shipper down, as Prepare does: its caller commits alone (awaitShipped), and the
// catch-up that makes the shim dual again must hold commits and ship what the peer lacks —
// an online Shipper, still counted synced, let it switch at once.
//
// A large transaction takes its time to decode and to ship, which is the local database's pace
// and its size, not the peer failing: as for a dual commit (Prepare), past ctx's deadline the
// wait goes on, checked every decodeGrace, while the decoder reads on before mark or a plain
// commit before mark waits for plainLoop (for at most decodeLagMax more), and a ship under way
// gets the size allowance of the plain commits before mark on top (sizeAllowance). Cancelling
// ctx ends it at once.
func (s *Shipper) WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error {
	gid := plainGID(s.cfg.Site, xid)
	wctx, cancel := withoutDeadline(ctx)
	defer cancel()
	var expired <-chan time.Time
	// grace: the deadline as extended for a decoder that is behind (at most to lagUntil); a
	// ship under way may take the size allowance of the plain commits before mark past it.
	var grace, lagUntil time.Time
	if dl, ok := ctx.Deadline(); ok {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		expired, grace, lagUntil = t.C, dl, dl.Add(decodeLagMax)
	}
	var allow time.Duration
	allowed := map[*jentry]bool{}
	read := [2]uint64{s.received.Load()}
	for {
		s.mu.Lock()
		if s.link != linkOnline || s.resyncErr != nil || s.gap || s.backup.Load() {
			link := s.link
			s.mu.Unlock()
			if r := s.refused.Load(); r != nil {
				// Down for the peer's refusal of a term (shipped notes it before it takes the
				// Shipper down): the caller tells it from a peer that does not answer
				// (TestPeerTermRefusalPlainThroughShim).
				return fmt.Errorf("%w (%s): %w", errNotInStep, linkName(link), r)
			}
			return fmt.Errorf("%w (%s)", errNotInStep, linkName(link))
		}
		end := s.streamEnd
		decoding := end < mark
		// shipping: plainLoop is shipping a plain commit before mark; queued: one waits for it.
		left, shipping, queued := decoding, false, false
		for _, e := range s.journal {
			if e.pos >= mark {
				break
			}
			if e.plain && !e.suspect && e.state != stDone {
				shipping = shipping || e.shipping
				queued = queued || !e.shipping
				left = left || xid == 0 || e.gid == gid
				if !allowed[e] && e.txn != nil {
					allowed[e] = true
					allow += sizeAllowance(e.txn)
				}
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if !left {
			return nil
		}
		select {
		case <-changed:
		case <-wctx.Done():
			return ctx.Err()
		case <-expired:
			// Progress: the decoder read on, or the stream reached further.
			now := [2]uint64{s.received.Load(), uint64(end)}
			if time.Now().Before(lagUntil) && (queued || (decoding && now != read)) {
				read, grace = now, time.Now().Add(decodeGrace)
				expired = time.After(decodeGrace)
				continue
			}
			if wait := time.Until(grace.Add(allow)); shipping && wait > 0 {
				expired = time.After(min(wait, decodeGrace))
				continue
			}
			s.goDown(fmt.Sprintf("plain commit of xid %d not on the peer in time", xid), context.DeadlineExceeded)
			return context.DeadlineExceeded
		}
	}
}

// ShippedBefore tells, whether or not the Shipper is in step with the peer, whether the peer
// has every plain commit made on the local database before the stream position mark: it waits,
// within ctx, until the decoder has taken the stream up to mark into the journal, and returns
// nil when no plain commit before mark is left to ship there (none was, or the peer committed
// it: a plain entry is done only once shipped, or found on the peer) — what WaitShipped(ctx, 0,
// mark) waits for, without its wait for the peer. It fails when it cannot tell (the journal
// dropped events before mark, the decoder did not reach mark within ctx), when shipping stopped
// for a divergence (the peer needs resync), and when a plain commit before mark is not on the
// peer. It neither ships nor takes the Shipper down.
//
// Only plain commits, as for WaitShipped: a prepared transaction committed locally without the
// peer's PREPARE was committed alone (solo, Shim.CommitAlone), which its shim counts already
// (Shim.WentSolo); one prepared on the peer, or only prepared locally, the resolver settles the
// same way on both databases (DESIGN §5.4).
func (s *Shipper) ShippedBefore(ctx context.Context, mark pglogrepl.LSN) error {
	tick := time.NewTicker(100 * time.Millisecond) // add does not notify of dropped events
	defer tick.Stop()
	for {
		s.mu.Lock()
		if s.resyncErr != nil {
			err := s.resyncErr
			s.mu.Unlock()
			return err
		}
		if s.streamEnd >= mark {
			for _, e := range s.journal {
				if e.pos >= mark {
					break
				}
				if e.plain && !e.suspect && e.state != stDone {
					s.mu.Unlock()
					return fmt.Errorf("plain commit %s at %s is %s, not on the peer", e.gid, e.pos, stateName(e.state))
				}
			}
			s.mu.Unlock()
			return nil
		}
		if s.gap {
			end := s.streamEnd
			s.mu.Unlock()
			return fmt.Errorf("the journal dropped transactions after %s, before the mark %s: what the peer lacks is not known", end, mark)
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("the decoder has not read the local stream up to %s: %w", mark, ctx.Err())
		}
	}
}

// withoutDeadline returns a context that ends when ctx is cancelled, but not at ctx's deadline.
func withoutDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			cancel()
		}
	})
	return wctx, func() { stop(); cancel() }
}

// plainLoop ships, while the peer is online, plain commits and prepared transactions that
// committed locally without a peer prepare, in stream order, each with its decision row and
// COMMIT. A failure takes the Shipper down (unknown outcome) or stops shipping for resync
// (the peer refused).
func (s *Shipper) plainLoop(ctx context.Context) {
	sweep := time.NewTicker(commitGrace / 2)
	defer sweep.Stop()
	for {
		// Sweep on its tick whether or not there is something to ship: under a steady stream
		// of plain commits this loop may never be idle, and a transaction committed locally
		// whose peer COMMIT PREPARED nobody asked for would stay prepared there, holding the
		// slot and every later dual commit that must follow it (waitForPrepare).
		select {
		case <-sweep.C:
			s.sweep()
		default:
		}
		s.mu.Lock()
		var job shipJob
		// A backup ships nothing: what its journal holds from its last master term waits for
		// the next one's catch-up (a stale term would be refused by the peer anyway).
		if s.link == linkOnline && s.resyncErr == nil && !s.backup.Load() {
			if e, _, _ := s.nextToShipLocked(false, math.MaxUint64); e != nil {
				job = s.claimLocked(e)
			}
		}
		wake := s.plainWake
		s.mu.Unlock()
		if job.e == nil {
			select {
			case <-wake:
			case <-sweep.C:
				s.sweep()
			case <-ctx.Done():
				return
			}
			continue
		}
		res, err := s.shipOne(ctx, job)
		if err != nil && ctx.Err() != nil {
			s.unclaim(job)
			return
		}
		s.shipped(job, res, err, false)
	}
}

// commitGrace is how long after its local COMMIT PREPARED was decoded a transaction prepared
// on the peer waits for its session's Commit before the Shipper commits it there itself.
const commitGrace = 2 * time.Second

// sweep asks, while the peer is online, for the peer's COMMIT PREPARED of transactions
// committed locally whose session did not ask for it within commitGrace, and again for the
// COMMIT or ROLLBACK PREPARED of those whose last one was dropped or failed: until it is done
// the slot cannot advance past the transaction, nor can a later one that must follow it
// (nextToShipLocked). While the peer is down or catching up, catch-up ships them itself.
func (s *Shipper) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.link != linkOnline {
		return
	}
	now := time.Now()
	for _, e := range s.journal {
		if e.state == stDone || e.opQueued || e.retryAt.IsZero() || now.Before(e.retryAt) {
			continue
		}
		switch {
		case e.undo && (e.state == stPrepared || e.state == stUnknown):
			s.askLocked(e, peerOp{gid: e.gid})
		case e.committed && !e.undo && e.state == stPrepared:
			e.peerCommit = true
			s.askLocked(e, peerOp{gid: e.gid, commit: true})
		}
	}
}

// shipJob is a journal entry claimed for shipping, with what shipping needs read under the lock.
type shipJob struct {
	e        *jentry
	txn      *Txn
	gid      string
	prepared bool
	undo     bool
}

// shipResult says what shipping one entry did.
type shipResult int

const (
	shipApplied  shipResult = iota // applied and committed on the peer
	shipSkipped                    // the peer had it already (decision row)
	shipResolved                   // it was prepared on the peer: committed or rolled back there
)

// nextToShipLocked returns the first entry before until (in stream order), and its index in
// the journal, whose local outcome is known and that still needs the peer: in catch-up every one, online only those no peer
// operation is asked for. busy: the first such entry is being worked on, or (online) it must
// follow one before it whose COMMIT PREPARED on the peer is still to come: wait, to keep order.
func (s *Shipper) nextToShipLocked(catchUp bool, until pglogrepl.LSN) (e *jentry, at int, busy bool) {
	for i, e := range s.journal {
		if e.pos > until {
			break
		}
		if e.state == stDone || !e.finished() || e.suspect {
			continue // a suspect is never shipped: settle decides it
		}
		if e.shipping || e.state == stApplying {
			return nil, 0, true
		}
		if catchUp {
			return e, i, false
		}
		if !e.plain && (e.undo || e.state == stPrepared) {
			continue // a COMMIT/ROLLBACK PREPARED is asked for it (opLoop, sweep)
		}
		for _, p := range s.journal[:i] {
			if e.waitsFor(p) {
				return nil, 0, true
			}
		}
		return e, i, false
	}
	return nil, 0, false
}

func (s *Shipper) claimLocked(e *jentry) shipJob {
	e.shipping = true
	return shipJob{e: e, txn: e.txn, gid: e.gid, prepared: e.prepared, undo: e.undo}
}

func (s *Shipper) unclaim(j shipJob) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.e.shipping = false
	s.notifyLocked()
}

// shipOne brings one finished transaction to the peer, idempotently: what the peer has
// already (its decision row) is skipped, what is prepared there is committed (or rolled back),
// the rest is applied with its decision row and COMMIT. A transient refusal (apply.go
// transient) is sent again a few times (shipRetries).
func (s *Shipper) shipOne(ctx context.Context, j shipJob) (shipResult, error) {
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout+sizeAllowance(j.txn))
	defer cancel()
	slot, err := s.pool.get(octx)
	if err != nil {
		return 0, err
	}
	res, err := s.shipOn(octx, slot.c, j)
retry:
	for try := 1; try <= shipRetries && transient(err) && !slot.c.conn.IsClosed(); try++ {
		s.logger.Info("the peer refused a transaction for the moment; sending it again", "gid", j.gid, "try", try, "err", err)
		t := time.NewTimer(time.Duration(try) * shipRetryWait)
		select {
		case <-t.C:
		case <-octx.Done():
			t.Stop()
			break retry // err stays the refusal
		}
		res, err = s.shipOn(octx, slot.c, j)
	}
	s.pool.put(octx, slot, err != nil && !isDefinite(err) && !errors.Is(err, errDiverged))
	return res, err
}

// shipRetries is how many times shipOne sends a transaction again after a transient refusal
// (a deadlock on the peer, say), on the same connection and waiting shipRetryWait longer
// before each try. Past them shipped takes the peer for not in step, and catch-up tries again.
const (
	shipRetries   = 3
	shipRetryWait = 100 * time.Millisecond
)

func (s *Shipper) shipOn(ctx context.Context, c *applyConn, j shipJob) (shipResult, error) {
	if j.undo {
		if err := finishPrepared(ctx, c, j.gid, false); err != nil {
			return 0, err
		}
		return shipResolved, nil
	}
	if j.prepared {
		prepared, decided, err := peerTxnState(ctx, c, j.gid)
		switch {
		case err != nil:
			return 0, err
		case decided:
			return shipSkipped, nil
		case prepared:
			err := finishPrepared(ctx, c, j.gid, true)
			if err == nil {
				return shipResolved, nil
			}
			if !errors.Is(err, errNotOnPeer) {
				return 0, err
			}
			// Rolled back on the peer meanwhile (by recovery): apply it.
		}
	}
	at, err := s.copiedPoint(ctx, c)
	if err != nil {
		return 0, err
	}
	if j.e.pos <= at {
		return shipSkipped, nil // in the peer's copy of the tables (Resync), sent again by the slot
	}
	if j.txn == nil {
		return 0, fmt.Errorf("ship %s: %w: its changes are no longer held", j.gid, errDiverged)
	}
	term := s.term.Load()
	err = c.apply(ctx, j.txn, j.gid, term, endCommit)
	switch {
	case errors.Is(err, errAlreadyApplied):
		return shipSkipped, nil
	case pgErrCode(err) == sqlstateStaleTerm:
		return 0, &termRefusal{term: term, err: err}
	case err != nil:
		return 0, err
	}
	return shipApplied, nil
}

// termRefusal is the peer's refusal (check_term, sqlstateStaleTerm) of a transaction shipped
// from the stream under term.
type termRefusal struct {
	term uint64
	err  error
}

func (r *termRefusal) Error() string {
	return fmt.Sprintf("the peer database refused term %d: %v", r.term, r.err)
}

func (r *termRefusal) Unwrap() error { return r.err }

// refusedFor is Prepare's definite refusal of gid when the peer refused a transaction shipped
// from the stream under gid's term or a newer one (refused), else nil.
func (s *Shipper) refusedFor(gid string) error {
	if _, term, _, ok := parseGID(gid); ok && term > 0 {
		if r := s.refused.Load(); r != nil && term <= r.term {
			return &PeerError{GID: gid, Step: "apply", Definite: true, Err: r}
		}
	}
	return nil
}

// refusedTerm tells whether err carries the peer's refusal of a transaction shipped from the
// stream (a *termRefusal) under term or a newer one.
func refusedTerm(err error, term uint64) bool {
	var r *termRefusal
	return errors.As(err, &r) && term <= r.term
}

// noteRefused keeps r in refused unless a refusal of a newer term is there.
func (s *Shipper) noteRefused(r *termRefusal) {
	for {
		old := s.refused.Load()
		if old != nil && old.term >= r.term {
			return
		}
		if s.refused.CompareAndSwap(old, r) {
			return
		}
	}
}

// copiedPoint is the stream position of the last copy of the tables on the peer (Resync): a
// transaction that ends before it is in the copy. The peer keeps it in a decision row written
// with the copy (copyTables), read on c the first time; 0: no copy.
func (s *Shipper) copiedPoint(ctx context.Context, c *applyConn) (pglogrepl.LSN, error) {
	if s.copiedKnown.Load() {
		return pglogrepl.LSN(s.copiedAt.Load()), nil
	}
	rr := c.conn.ExecParams(ctx, `SELECT lsn::text FROM tandem.decisions WHERE gid = $1 AND lsn IS NOT NULL`,
		[][]byte{[]byte(resyncGID(s.cfg.Site))}, nil, nil, nil)
	var at pglogrepl.LSN
	var perr error
	for rr.NextRow() {
		at, perr = pglogrepl.ParseLSN(string(rr.Values()[0]))
	}
	if _, err := rr.Close(); err != nil {
		return 0, fmt.Errorf("read the position of the peer's copy of the tables: %w", err)
	}
	if perr != nil {
		return 0, fmt.Errorf("read the position of the peer's copy of the tables: %w", perr)
	}
	s.copiedAt.Store(max(s.copiedAt.Load(), uint64(at))) // shipping never runs during a Resync
	s.copiedKnown.Store(true)
	return pglogrepl.LSN(s.copiedAt.Load()), nil
}

// shipped records the outcome of shipOne. A definite failure stops shipping: the peer needs
// resync, or (a newer term on the peer) this site is no longer master. A transient refusal
// (the peer would take the transaction later: a deadlock there, say) counts as an unknown
// outcome: online the peer is no longer in step, and catch-up (drain) tries again.
func (s *Shipper) shipped(j shipJob, res shipResult, err error, catchUp bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := j.e
	e.shipping = false
	switch {
	case err == nil:
		if e.state != stDone {
			s.markDoneLocked(e)
		}
		if !j.undo && res == shipApplied {
			// Only a row this apply wrote, with its lsn: a skip may have been decided by a row
			// an earlier version wrote without one, which peerNewest cannot count.
			s.peerHasLocked(e)
		}
		switch res {
		case shipApplied:
			s.stats.Shipped++
		case shipSkipped:
			s.stats.Skipped++
		case shipResolved:
			s.stats.Resolved++
		}
	case pgErrCode(err) == sqlstateStaleTerm:
		s.logger.Error("the peer database has a newer term, or this one of another master: shipping stops, and dual commits of that term are refused", "gid", j.gid, "err", err)
		var r *termRefusal
		if errors.As(err, &r) {
			s.noteRefused(r)
		}
		s.goDownLocked("stale term", err)
	case (isDefinite(err) && !transient(err)) || errors.Is(err, errDiverged) || errors.Is(err, errNotOnPeer):
		s.divergedLocked(j.gid, "the peer refused it", err)
	case !catchUp:
		s.goDownLocked("ship "+j.gid, err)
	}
	s.advanceLocked()
}

// divergedLocked stops shipping for good: the peer diverged at gid (what says how), so it
// needs resync.
func (s *Shipper) divergedLocked(gid, what string, err error) {
	s.resyncErr = fmt.Errorf("ship %s: %s (divergence): %w: %w", gid, what, ErrNeedsResync, err)
	s.logger.Error("the peer diverged from the stream ("+what+"); shipping stopped, the peer needs resync", "gid", gid, "err", err)
	s.goDownLocked("divergence", err)
	s.synced = false
}

// pgErrCode is the SQLSTATE of a PostgreSQL error (from pgconn or lib/pq), or "".
func pgErrCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		return string(pqErr.Code)
	}
	return ""
}

var _ Peer = (*Shipper)(nil)

// copyWatch finds a transaction prepared before the first position (from) of a slot that
// Resync made anew and committed after it, before until (where the copy imported its snapshot;
// one still prepared then is refused): the copy's snapshot, exported at from, does not see it,
// and the new slot streams of it only its COMMIT PREPARED — or the whole of it at that point,
// with its PREPARE's own positions, before from (seen on 15.18 either way, as PostgreSQL had
// decoded its changes or not) — which add drops as held. The first such gid found is lacking;
// Resync then fails with ErrNeedsResync.
type copyWatch struct {
	from, until pglogrepl.LSN            // 0: not known yet
	prepared    map[string]pglogrepl.LSN // gid → the last position the stream prepared it at
	committed   map[string]pglogrepl.LSN // gid → the position of its COMMIT PREPARED
	seen        pglogrepl.LSN            // the stream's furthest position
	judged      bool                     // until is known and the stream has passed it
	copied      bool                     // the copy is done (copiedLocked)
	lacking     string
}

func newCopyWatch() *copyWatch {
	return &copyWatch{prepared: map[string]pglogrepl.LSN{}, committed: map[string]pglogrepl.LSN{}}
}

// see takes a stream event into w (under the Shipper's mu), and tells whether w has just found
// a transaction the copy lacks; nil: nothing.
func (w *copyWatch) see(ev Event) bool {
	if w == nil || w.judged {
		return false
	}
	switch {
	case w.until != 0 && ev.Pos > w.until: // past what it looks at
	case ev.Txn != nil && ev.Txn.Prepared:
		w.prepared[ev.Txn.GID] = max(w.prepared[ev.Txn.GID], ev.Pos)
	case ev.Finish != nil && ev.Finish.Committed:
		w.committed[ev.Finish.GID] = ev.Pos
	}
	w.seen = max(w.seen, ev.Pos)
	return w.judge()
}

// judge looks, once until is known and the stream has passed it, for a transaction committed
// in (from, until] that the stream did not prepare past from; it tells whether it found one.
func (w *copyWatch) judge() bool {
	// A copy at the slot's first position itself (nothing written since) lacks nothing: the
	// stream need not pass it, and an idle one never does (awaitCopyWatch would wait for ever).
	if w.judged || w.until == 0 || (w.seen < w.until && w.until > w.from) {
		return false
	}
	w.judged = true
	for gid, at := range w.committed {
		if at > w.from && at <= w.until && w.prepared[gid] <= w.from && (w.lacking == "" || gid < w.lacking) {
			w.lacking = gid
		}
	}
	w.prepared, w.committed = nil, nil
	return w.lacking != ""
}

// lacksLocked stops shipping once the copy is done and w found a transaction it lacks.
func (s *Shipper) lacksLocked(w *copyWatch) {
	if w == nil || !w.copied || w.lacking == "" || s.resyncErr != nil {
		return
	}
	s.resyncErr = fmt.Errorf("transaction %s was prepared before the position of the copy of the application tables and committed after it: "+
		"the copy lacks it: %w", w.lacking, ErrNeedsResync)
	s.logger.Error("a transaction prepared before the copy's position and committed after it is not in the copy; shipping stopped, the peer needs resync (tandem resync)",
		"gid", w.lacking)
	s.synced = false
	s.notifyLocked()
}
