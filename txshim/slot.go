package txshim

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// The slot is the journal (DESIGN §5.2): while the peer is away it holds back the WAL of every
// transaction the peer lacks. PostgreSQL bounds that with max_slot_wal_keep_size; past the
// bound a checkpoint invalidates the slot (wal_status "lost") and removes the WAL, so those
// transactions can no longer be shipped and the peer needs resync (§5.5). This file reads the
// slot's state and makes a lost slot anew.

// SlotInfo is what pg_replication_slots says of a site's slot.
type SlotInfo struct {
	Exists bool
	// WALStatus is pg_replication_slots.wal_status: reserved, extended, unreserved or lost.
	WALStatus string
	// Retained is the WAL the slot holds back, in bytes: from its restart_lsn to the current
	// WAL position (0 when lost).
	Retained int64
	// Bounded: max_slot_wal_keep_size sets a bound (and the slot is not lost). Safe is then how
	// many more bytes of WAL may be written before the slot is in danger of invalidation
	// (pg_replication_slots.safe_wal_size; negative once past the bound).
	Bounded bool
	Safe    int64
}

// Lost tells whether PostgreSQL invalidated the slot: it can never stream again.
func (i SlotInfo) Lost() bool { return i.Exists && i.WALStatus == "lost" }

// Gone tells whether the slot cannot stream again: invalidated, or not there at all (dropped by
// hand) — either way what it held back is kept nowhere.
func (i SlotInfo) Gone() bool { return !i.Exists || i.Lost() }

// ReadSlot reads the state of slot in db (a local database).
func ReadSlot(ctx context.Context, db *sql.DB, slot string) (SlotInfo, error) {
	info := SlotInfo{Exists: true}
	err := db.QueryRowContext(ctx, `SELECT coalesce(wal_status, ''),
  coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint,
  safe_wal_size IS NOT NULL, coalesce(safe_wal_size, 0)
FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&info.WALStatus, &info.Retained, &info.Bounded, &info.Safe)
	if errors.Is(err, sql.ErrNoRows) {
		return SlotInfo{}, nil
	}
	if err != nil {
		return SlotInfo{}, fmt.Errorf("read replication slot %s: %w", slot, err)
	}
	return info, nil
}

// slotTimeout bounds reading the slot's state after a failed stream.
const slotTimeout = 5 * time.Second

// checkSlot runs after a stream failed: if PostgreSQL invalidated the slot, or it is gone
// (dropped by hand: what was committed since is kept by no slot), shipping stops for good (Err
// wraps ErrNeedsResync) until Resync makes the slot anew, and it reports true.
// A backup whose slot holds nothing that is still to be shipped — its transactions are all
// writes that bypassed Tandem, reported and never shipped (SetBypassFrom 0) — gets a new slot
// at once instead (renewBackupSlot), and it reports false; while the slot cannot be made
// (its making waits for a transaction prepared on the server) it reports true, and the peer
// needs no resync for it.
func (s *Shipper) checkSlot(ctx context.Context) bool {
	db, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return false
	}
	defer db.Close()
	rctx, cancel := context.WithTimeout(ctx, slotTimeout)
	defer cancel()
	info, err := ReadSlot(rctx, db, SlotName(s.cfg.Site))
	if err != nil || !info.Gone() {
		return false
	}
	switch renewable, renewed := s.renewBackupSlot(rctx, db); {
	case renewed:
		return false // streamed again at once
	case renewable:
		// Nothing it held is to be shipped, so nothing is lost: the making is tried again at
		// the next failed stream (slowly), and the peer needs no resync for it. The making
		// waits for every transaction in progress on the server — a prepared one too (one this
		// site left in doubt as master, until the resolver settles it) — and runs out of time.
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slotLost {
		return true
	}
	s.slotLost = true
	what := "was invalidated by PostgreSQL (max_slot_wal_keep_size): the WAL of transactions the peer may lack is gone"
	if !info.Exists {
		what = "does not exist (dropped by hand?): no slot keeps what was committed since, which the peer may lack"
	}
	err = fmt.Errorf("replication slot %s %s: %w", SlotName(s.cfg.Site), what, ErrNeedsResync)
	if s.resyncErr == nil {
		s.resyncErr = err
	}
	s.logger.Error("the replication slot lost transactions the peer may lack: shipping stops until tandem resync copies the application tables",
		"slot", SlotName(s.cfg.Site), "exists", info.Exists, "backlog_in_memory", len(s.journal))
	s.goDownLocked("the slot was lost", err)
	s.notifyLocked()
	return true
}

// renewBackupSlot makes a backup's lost or missing slot anew when nothing it held is to be
// shipped (renewable): the site has been backup since this process started (SetBypassFrom 0),
// so every transaction of its own database is a bypass and the journal has nothing pending but
// suspects — never shipped, whatever settle finds (a write that bypassed Tandem, or one the
// peer has); they stay for settle to decide. Bypasses in the lost WAL go unreported (tandem
// verify finds what they changed). renewed: the slot was made anew.
func (s *Shipper) renewBackupSlot(ctx context.Context, db *sql.DB) (renewable, renewed bool) {
	s.mu.Lock()
	pending := false
	for _, e := range s.journal {
		pending = pending || (e.state != stDone && !e.suspect)
	}
	s.mu.Unlock()
	if !s.backup.Load() || s.bypassFrom.Load() != 0 || pending {
		return false, false
	}
	if err := s.renewSlot(ctx, db); err != nil {
		level := slog.LevelError
		if s.renewFails > 0 {
			level = slog.LevelDebug // said at the first try
		}
		s.renewFails++
		s.logger.Log(ctx, level, "the backup's replication slot was lost and cannot be made anew yet (a transaction in progress or prepared on the server?); trying again",
			"slot", SlotName(s.cfg.Site), "tries", s.renewFails, "err", err)
		return true, false
	}
	s.logger.Warn("the backup's replication slot was lost (invalidated by max_slot_wal_keep_size, or dropped) and is made anew; "+
		"writes that bypassed Tandem meanwhile are not reported (tandem verify finds them)", "slot", SlotName(s.cfg.Site), "failed_tries", s.renewFails)
	s.renewFails = 0
	return true, true
}

// renewSlot drops slot and creates it again (two-phase, pgoutput). Dropping fails while a
// walsender still holds the slot (55006), for a moment after a stream stopped: it is retried.
// The creation waits for the write transactions open at that moment to end.
func renewSlot(ctx context.Context, db *sql.DB, slot string) error {
	if err := dropSlotRetrying(ctx, db, slot); err != nil {
		return err
	}
	return createSlot(ctx, db, slot)
}

// dropSlotRetrying drops slot if it exists, retried while a walsender still holds it (renewSlot).
func dropSlotRetrying(ctx context.Context, db *sql.DB, slot string) error {
	for {
		_, err := db.ExecContext(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err == nil {
			break
		}
		if pgErrCode(err) != "55006" {
			return fmt.Errorf("drop replication slot %s: %w", slot, err)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("drop replication slot %s: %w (%w)", slot, ctx.Err(), err)
		}
	}
	return nil
}

// createSlot creates the site's slot: pgoutput, two-phase (DESIGN §5.2). PostgreSQL makes it
// wait for the write transactions open at that moment to end.
func createSlot(ctx context.Context, db *sql.DB, slot string) error {
	if _, err := db.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, true)`, slot); err != nil {
		return fmt.Errorf("create two-phase replication slot %s: %w", slot, err)
	}
	return nil
}

// exportedSlot is a slot made on a replication connection that exported the snapshot of the
// slot's first position (CREATE_REPLICATION_SLOT … SNAPSHOT 'export'): a transaction that
// imports it (SET TRANSACTION SNAPSHOT) sees exactly the commits whose records lie before at,
// and the slot streams every later one. PostgreSQL builds that snapshot from the commit records
// it decoded while making the slot, not from the transactions in progress, so no commit lies
// between the two — not one whose record is written and which its backend has yet to make
// visible. The snapshot can be imported until conn runs another command or closes.
type exportedSlot struct {
	conn     *pgconn.PgConn
	snapshot string
	at       pglogrepl.LSN // the slot's confirmed position
}

// close closes the replication connection, which ends the snapshot's export; nil: nothing.
func (e *exportedSlot) close(ctx context.Context) {
	if e != nil && e.conn != nil {
		e.conn.Close(ctx)
		e.conn = nil
	}
}

// createSlotExported creates slot (pgoutput, two-phase) on a replication connection to dsn,
// exporting the snapshot of its first position (exportedSlot). The creation waits for the
// write transactions open at that moment to end.
//
// TWO_PHASE goes with SNAPSHOT 'export' (PostgreSQL 15 takes both): the slot is two-phase from
// its making, from its first position on (PostgreSQL sets its two_phase_at to the consistent
// point it finds). Made without it, it became two-phase only at the decoder's first stream;
// a process stopped in between (a crash, SIGTERM, a resync that failed) left a pgoutput slot
// with two_phase false, which install refuses, sending the operator to drop it by hand
// (TestResyncLostSlotStoppedBeforeStream). Nothing else changes: the first stream starts at the
// slot's confirmed position, the same first position, so two-phase decoding started there
// either way. A transaction prepared before that position and committed after it is in neither
// the snapshot nor, but for its COMMIT PREPARED (or the whole of it streamed then, at its
// PREPARE's own positions, before the first position), the stream: copyWatch finds it, and the
// resync fails for another to copy it (TestResyncLostSlotPreparedAcrossItsStart). Rather than
// install taking a slot that is not two-phase when the peer is owed a copy (owedGID), which
// would lean on that row and leave the slot's two-phase start to whichever stream comes first,
// Tandem no longer makes such a slot at all.
func createSlotExported(ctx context.Context, dsn, slot string) (*exportedSlot, error) {
	cfg, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	pinSettings(cfg, noTimeouts)
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create replication slot %s: replication connection: %w", slot, err)
	}
	res, err := pglogrepl.ParseCreateReplicationSlot(conn.Exec(ctx,
		`CREATE_REPLICATION_SLOT "`+slot+`" LOGICAL pgoutput (TWO_PHASE, SNAPSHOT 'export')`))
	var at pglogrepl.LSN
	if err == nil {
		at, err = pglogrepl.ParseLSN(res.ConsistentPoint)
	}
	if err == nil && res.SnapshotName == "" {
		err = errors.New("no snapshot exported")
	}
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("create replication slot %s with its snapshot exported: %w", slot, err)
	}
	return &exportedSlot{conn: conn, snapshot: res.SnapshotName, at: at}, nil
}

// renewSlotExported is renewSlot of the site's slot, the slot made by createSlotExported; the
// next stream starts at its first position, which slotStarts takes for this Shipper's doing.
func (s *Shipper) renewSlotExported(ctx context.Context, db *sql.DB) (*exportedSlot, error) {
	slot := SlotName(s.cfg.Site)
	if err := dropSlotRetrying(ctx, db, slot); err != nil {
		return nil, err
	}
	// Watched from before the new slot can stream (Resync clears it).
	s.mu.Lock()
	s.copyWatch = newCopyWatch()
	s.mu.Unlock()
	exp, err := createSlotExported(ctx, s.cfg.LocalDSN, slot)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.slotRenewed = true
	s.copyWatch.from = exp.at
	s.mu.Unlock()
	return exp, nil
}

// renewSlot is renewSlot of the site's slot, which the next stream then starts past what this
// Shipper confirmed: slotStarts takes that for its own doing.
func (s *Shipper) renewSlot(ctx context.Context, db *sql.DB) error {
	if err := renewSlot(ctx, db, SlotName(s.cfg.Site)); err != nil {
		return err
	}
	s.mu.Lock()
	s.slotRenewed = true
	s.mu.Unlock()
	return nil
}

// slotStarts is told (Decoder.started) the slot's confirmed position from, where a new stream
// starts. The slot is confirmed only as far as this Shipper says (s.confirmed), so a slot that
// starts past it was made anew — dropped and created again by hand or by tandem install while
// the Shipper ran, or moved by hand (pg_replication_slot_advance) — unless this Shipper made it
// anew itself (Resync, renewBackupSlot: slotRenewed). The transactions committed in between are
// kept by no slot and the peer may lack them: as for a lost slot (checkSlot), shipping stops
// until Resync copies the tables, but for a backup's slot that holds nothing to ship. Before
// this check the new slot was streamed as if it were the old one, and the peer was called
// synced without the commits in between (TestSlotMadeAnewWhileStreaming). A Shipper that has
// confirmed nothing yet (a new one) cannot tell.
func (s *Shipper) slotStarts(from pglogrepl.LSN) {
	s.mu.Lock()
	defer s.mu.Unlock()
	renewed := s.slotRenewed // this stream's slot is the one made anew
	s.slotRenewed = false
	// A slot streams again (made anew by someone else, or by Resync): a later loss whose
	// renewal fails is a new one, said at Error again (TestBackupSlotLostAgainSaidAtError).
	s.renewFails = 0
	if s.confirmed == 0 || from <= s.confirmed {
		return
	}
	renewable := s.backup.Load() && s.bypassFrom.Load() == 0
	for _, e := range s.journal {
		renewable = renewable && (e.state == stDone || e.suspect)
	}
	if renewed || renewable || s.slotLost {
		if !renewed && !s.slotLost {
			s.logger.Warn("the backup's replication slot was made anew by someone else; it held nothing to ship, and "+
				"writes that bypassed Tandem meanwhile are not reported (tandem verify finds them)", "slot", SlotName(s.cfg.Site), "starts_at", from)
		}
		s.confirmed = from
		return
	}
	s.slotLost = true
	err := fmt.Errorf("replication slot %s starts at %s, past what this Shipper confirmed (%s): it was made anew (dropped and created again?) or moved by hand, "+
		"and the transactions committed in between, which the peer may lack, are kept by no slot: %w", SlotName(s.cfg.Site), from, s.confirmed, ErrNeedsResync)
	if s.resyncErr == nil {
		s.resyncErr = err
	}
	s.logger.Error("the replication slot was made anew past what the peer was shipped: shipping stops until tandem resync copies the application tables",
		"slot", SlotName(s.cfg.Site), "starts_at", from, "confirmed", s.confirmed)
	s.confirmed = from
	s.goDownLocked("the slot was made anew", err)
	s.synced = false
	s.notifyLocked()
}
