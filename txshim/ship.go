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

// gidFor is the global transaction id of a write transaction (DESIGN §5.3).
func gidFor(site string, term uint64, xid uint64) string {
	return "tandem_" + site + "_" + strconv.FormatUint(term, 10) + "_" + strconv.FormatUint(xid, 10)
}

// parseGID splits a gid made by gidFor. Site names may hold underscores, so the two numbers
// are taken from the right.
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
	return rest[:j], term, xid, true
}

// plainGID is the decision-row key of a plain commit shipped from the stream.
func plainGID(site string, xid uint32) string {
	return "tandem_" + site + "_plain_" + strconv.FormatUint(uint64(xid), 10)
}

// ShipperConfig configures a Shipper.
type ShipperConfig struct {
	Site     string // the local site: the source of the shipped changes
	LocalDSN string // the local database, streamed through the slot tandem_<Site>
	PeerDSN  string // the peer database the changes are applied to
	Conns    int    // apply connections to the peer; 0 means 4
	// OpTimeout bounds each asynchronous COMMIT/ROLLBACK PREPARED and plain-commit apply on
	// the peer; 0 means 10s.
	OpTimeout time.Duration
	Logger    *slog.Logger
}

// Shipper is the peer side of the dual commit (the Peer of commit.go): it streams the local
// slot, prepares each transaction on the peer when asked (DESIGN §5.3 step 2), commits or rolls
// it back there afterwards, ships plain commits in stream order, and lets the slot forget a
// transaction only once the peer has committed it ("the slot is the journal", §5.2).
type Shipper struct {
	cfg    ShipperConfig
	logger *slog.Logger
	dec    *Decoder
	pool   *applyPool
	term   atomic.Uint64
	ops    chan peerOp

	mu       sync.Mutex
	journal  []*jentry          // unconfirmed stream entries in stream order
	byGID    map[string]*jentry // prepared transactions in the journal
	changed  chan struct{}      // closed and replaced on every journal change
	plainErr error              // the plain-commit stream stopped on this definite error
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

// jentry is one stream event the slot has not been allowed to forget yet.
type jentry struct {
	txn        *Txn // nil for a position-only entry
	pos        pglogrepl.LSN
	state      int
	plain      bool // ship with apply + COMMIT in stream order (plain commits)
	committed  bool // the local COMMIT PREPARED was decoded
	peerCommit bool // Commit(gid) was asked for
}

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
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "shipper", "site", cfg.Site)
	return &Shipper{
		cfg:     cfg,
		logger:  logger,
		dec:     NewDecoder(cfg.LocalDSN, cfg.Site, logger),
		pool:    newApplyPool(cfg.PeerDSN, cfg.Site, cfg.Conns),
		ops:     make(chan peerOp, 1024),
		byGID:   map[string]*jentry{},
		changed: make(chan struct{}),
	}
}

// SetTerm sets the term that plain commits are fenced with on the peer (DESIGN §3); prepared
// transactions carry their own term in their gid. 0 skips the check.
func (s *Shipper) SetTerm(term uint64) { s.term.Store(term) }

// Err is the definite error that stopped shipping plain commits (the peer diverged), or nil.
func (s *Shipper) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plainErr
}

// Run streams the slot and serves the peer until ctx ends; it reconnects the decoder after
// failures and returns only when all its goroutines are gone.
func (s *Shipper) Run(ctx context.Context) error {
	events := make(chan Event, 256)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		s.pool.close(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.decodeLoop(ctx, events)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.plainLoop(ctx)
	}()
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.opLoop(ctx)
		}()
	}
	for {
		select {
		case ev := <-events:
			s.add(ctx, ev)
		case <-ctx.Done():
			return nil
		}
	}
}

// decodeLoop runs the decoder, again after each failure (the slot resumes where it was).
func (s *Shipper) decodeLoop(ctx context.Context, events chan<- Event) {
	backoff := 100 * time.Millisecond
	for {
		start := time.Now()
		err := s.dec.Run(ctx, events)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		s.logger.Warn("decoder stopped; restarting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// add appends a stream event to the journal.
func (s *Shipper) add(ctx context.Context, ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ev.Txn != nil && ev.Txn.Prepared:
		e := &jentry{txn: ev.Txn, pos: ev.Pos}
		if old, ok := s.byGID[ev.Txn.GID]; ok && old.state != stDone {
			s.logger.Error("gid prepared twice in the stream", "gid", ev.Txn.GID)
		}
		s.byGID[ev.Txn.GID] = e
		s.journal = append(s.journal, e)
	case ev.Txn != nil:
		e := &jentry{txn: ev.Txn, pos: ev.Pos, plain: true}
		if len(ev.Txn.Changes) == 0 {
			e.state = stDone
		}
		s.journal = append(s.journal, e)
	case ev.Finish != nil:
		s.journal = append(s.journal, &jentry{pos: ev.Pos, state: stDone})
		e, ok := s.byGID[ev.Finish.GID]
		if !ok {
			break // finished a transaction shipped before (or one that came from the other site)
		}
		if !ev.Finish.Committed {
			// Rolled back locally: nothing to ship; undo a peer prepare if there is one.
			if e.state == stPrepared || e.state == stUnknown {
				s.enqueue(peerOp{gid: ev.Finish.GID})
			}
			e.state = stDone
			break
		}
		e.committed = true
		if e.state == stPending {
			// Committed locally without a Prepare on the peer (a prepared transaction the shim
			// did not make): ship it like a plain commit, in stream order.
			e.plain = true
		}
	default:
		s.journal = append(s.journal, &jentry{pos: ev.Pos, state: stDone})
	}
	s.advanceLocked()
}

// advanceLocked confirms the slot past the done prefix of the journal and wakes waiters.
func (s *Shipper) advanceLocked() {
	n := 0
	var pos pglogrepl.LSN
	for n < len(s.journal) && s.journal[n].state == stDone {
		pos = s.journal[n].pos
		if t := s.journal[n].txn; t != nil && t.Prepared && s.byGID[t.GID] == s.journal[n] {
			delete(s.byGID, t.GID)
		}
		n++
	}
	if n > 0 {
		s.journal = append(s.journal[:0:0], s.journal[n:]...)
		s.dec.Confirm(pos)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Shipper) enqueue(op peerOp) {
	select {
	case s.ops <- op:
	default:
		s.logger.Warn("peer operation queue full; recovery will finish the transaction", "gid", op.gid, "commit", op.commit)
	}
}

// Prepare implements Peer: it waits for gid's decoded changes and for every plain commit
// before it in the stream to be shipped (DESIGN §5.2 "Order on the peer"), then applies them on
// the peer and prepares gid there, all in one round trip.
func (s *Shipper) Prepare(ctx context.Context, gid string) error {
	e, err := s.waitForPrepare(ctx, gid)
	if err != nil {
		return &PeerError{GID: gid, Step: "wait", Definite: false, Err: err}
	}
	_, term, _, _ := parseGID(gid)
	slot, err := s.pool.get(ctx)
	if err != nil {
		s.setState(e, stPending)
		return &PeerError{GID: gid, Step: "connect", Definite: false, Err: err}
	}
	err = slot.c.apply(ctx, e.txn, gid, term, endPrepare)
	definite := err != nil && isDefinite(err)
	s.pool.put(ctx, slot, err != nil && !definite)
	switch {
	case err == nil:
		s.setState(e, stPrepared)
		return nil
	case definite:
		s.setState(e, stRefused)
		return &PeerError{GID: gid, Step: "apply", Definite: true, Err: err}
	default:
		s.setState(e, stUnknown)
		return &PeerError{GID: gid, Step: "apply", Definite: false, Err: err}
	}
}

func (s *Shipper) waitForPrepare(ctx context.Context, gid string) (*jentry, error) {
	for {
		s.mu.Lock()
		e, ok := s.byGID[gid]
		ready := false
		if ok {
			if e.state != stPending {
				s.mu.Unlock()
				return nil, fmt.Errorf("transaction %s is already %s", gid, stateName(e.state))
			}
			ready = true
			for _, p := range s.journal {
				if p == e {
					break
				}
				if p.plain && p.state != stDone {
					ready = false // a plain commit before it is not shipped yet
					break
				}
			}
			if ready {
				e.state = stApplying
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if ready {
			return e, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			if ok {
				return nil, fmt.Errorf("plain commits before %s are not shipped yet: %w", gid, ctx.Err())
			}
			return nil, fmt.Errorf("no decoded changes for %s from the local slot yet: %w", gid, ctx.Err())
		}
	}
}

func stateName(st int) string {
	return [...]string{"pending", "being applied", "prepared on the peer", "of unknown outcome on the peer", "refused by the peer", "done"}[st]
}

func (s *Shipper) setState(e *jentry, st int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.state == stDone {
		return // a local ROLLBACK PREPARED was decoded meanwhile
	}
	e.state = st
	if st == stPrepared && e.peerCommit {
		s.enqueue(peerOp{gid: e.txn.GID, commit: true})
	}
	s.advanceLocked()
}

// Commit implements Peer: COMMIT PREPARED gid on the peer, asynchronously.
func (s *Shipper) Commit(gid string) {
	s.mu.Lock()
	if e, ok := s.byGID[gid]; ok {
		e.peerCommit = true
	}
	s.mu.Unlock()
	s.enqueue(peerOp{gid: gid, commit: true})
}

// Rollback implements Peer: ROLLBACK PREPARED gid on the peer, asynchronously, if it is there.
func (s *Shipper) Rollback(gid string) { s.enqueue(peerOp{gid: gid}) }

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
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	verb := "ROLLBACK PREPARED "
	if op.commit {
		verb = "COMMIT PREPARED "
	}
	slot, err := s.pool.get(octx)
	if err != nil {
		s.logger.Warn("peer unreachable; recovery will finish the transaction", "gid", op.gid, "op", verb, "err", err)
		return
	}
	_, err = slot.c.conn.Exec(octx, verb+sqlLiteral(op.gid)).ReadAll()
	var pgErr *pgconn.PgError
	missing := errors.As(err, &pgErr) && pgErr.Code == "42704" // no such prepared transaction
	if missing && op.commit {
		// Committed already (by recovery, or an earlier attempt whose reply was lost) when its
		// decision row is there.
		var n int64
		res, qerr := slot.c.conn.Exec(octx, "SELECT 1 FROM tandem.decisions WHERE gid = "+sqlLiteral(op.gid)).ReadAll()
		if qerr == nil && len(res) == 1 {
			n = int64(len(res[0].Rows))
		}
		if n == 1 {
			err = nil
		}
	} else if missing {
		err = nil // nothing was prepared there
	}
	s.pool.put(octx, slot, err != nil && !isDefinite(err))
	if err != nil {
		s.logger.Warn("peer "+strings.TrimSpace(verb)+" failed; recovery will finish the transaction", "gid", op.gid, "err", err)
		return
	}
	if op.commit {
		s.mu.Lock()
		if e, ok := s.byGID[op.gid]; ok && (e.state == stPrepared || e.state == stUnknown) {
			e.state = stDone
			s.advanceLocked()
		}
		s.mu.Unlock()
	}
}

// plainLoop ships plain commits (and prepared transactions committed without a peer prepare)
// in stream order, each with its decision row and COMMIT.
func (s *Shipper) plainLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		s.mu.Lock()
		var next *jentry
		if s.plainErr == nil {
			for _, e := range s.journal {
				if e.plain && e.state != stDone {
					next = e
					break
				}
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if next == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		gid := next.txn.GID
		if gid == "" {
			gid = plainGID(s.cfg.Site, next.txn.XID)
		}
		err := s.shipPlain(ctx, next.txn, gid)
		if err == nil {
			backoff = 100 * time.Millisecond
			s.mu.Lock()
			next.state = stDone
			s.advanceLocked()
			s.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if isDefinite(err) {
			s.mu.Lock()
			s.plainErr = fmt.Errorf("ship plain commit %s: the peer refused it (divergence): %w", gid, err)
			s.advanceLocked()
			s.mu.Unlock()
			s.logger.Error("peer refused a plain commit; shipping stopped, the peer needs resync", "gid", gid, "err", err)
			continue
		}
		s.logger.Warn("peer unreachable for a plain commit; retrying", "gid", gid, "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Shipper) shipPlain(ctx context.Context, txn *Txn, gid string) error {
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	slot, err := s.pool.get(octx)
	if err != nil {
		return err
	}
	err = slot.c.apply(octx, txn, gid, s.term.Load(), endCommit)
	s.pool.put(octx, slot, err != nil && !isDefinite(err))
	return err
}

// Backlog is the number of stream entries the slot still holds for the peer.
func (s *Shipper) Backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.journal)
}

var _ Peer = (*Shipper)(nil)
