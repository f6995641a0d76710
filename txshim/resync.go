package txshim

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// Resync copies the local database's application tables to the peer and brings the Shipper
// back in step from there (DESIGN §5.5): the way out after the peer refused a shipped
// transaction (ErrNeedsResync) or the slot lost WAL (checkSlot), or whenever an operator wants
// the peer re-seeded.
//
// It calls hold (as CatchUp does: new commits stop and those in flight finish) only while it
// takes one snapshot of the local database and reads the WAL position L with it, so that the
// two agree: every commit before L is in the copy, every later one is streamed (checked, and
// the snapshot taken again until they do: resyncSnapshot). Commits go on (alone) while the
// copy runs — a departure from DESIGN §5.5, which holds them for the whole
// copy: that would stop the master's writes for as long as copying the database takes. What
// they committed meanwhile is then shipped from the slot as a catch-up ships its backlog, with
// commits held again only for the tail (drainAndSync). A slot PostgreSQL invalidated is made
// anew instead, on a replication connection that exports the snapshot of the new slot's
// first position, and the copy reads in it: that position is L (importSnapshot). Taken apart,
// the slot made first and the snapshot after it, a commit whose record lay between the slot's
// first position and L but which its backend had yet to make visible at the snapshot was in
// neither the copy nor what is shipped after L (TestResyncLostSlotCommitHeldBeforeVisible).
// One prepared before that position and committed after it (before the copy's snapshot is
// imported; one still prepared then is refused) is in neither either: the resync then fails
// with ErrNeedsResync before it copies (awaitCopyWatch), and the next one copies it (copyWatch,
// TestResyncLostSlotPreparedAcrossItsStart). It refuses while a tandem_ transaction is
// prepared on the local database (settle it first: the resolver, `tandem resolve`). On the peer, in one transaction under
// session_replication_role = replica and the source's replication origin (at L), it truncates
// every application table and COPYs each one's rows (generated columns are left to the
// peer), and computes its materialized views anew over them (resyncViews); then it forgets the journal up to L and confirms the slot there. release runs on
// failure too.
func (s *Shipper) Resync(ctx context.Context, hold func(ctx context.Context) (release func(), err error)) (err error) {
	s.mu.Lock()
	switch {
	case !s.running:
		s.mu.Unlock()
		return errors.New("resync: the Shipper is not running")
	case s.catching:
		s.mu.Unlock()
		return errors.New("resync: a catch-up or resync is running")
	}
	s.catching, s.link, s.synced = true, linkCatchUp, false
	s.notifyLocked()
	s.mu.Unlock()
	defer func() { s.endCatching("resync", err) }()
	start := time.Now()
	// A plain commit plainLoop is shipping now must not land after the copy.
	for {
		s.mu.Lock()
		busy := false
		for _, e := range s.journal {
			busy = busy || e.shipping
		}
		changed := s.changed
		s.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("resync: wait for the shipping in progress: %w", ctx.Err())
		}
	}
	// The watch for a transaction the copy lacks (copyWatch), from before the slot is made anew
	// until the resync ends.
	defer func() {
		s.mu.Lock()
		s.copyWatch = nil
		s.mu.Unlock()
	}()
	exported, err := s.renewLostSlot(ctx)
	if err != nil {
		return err
	}
	defer exported.close(context.WithoutCancel(ctx))
	if f := s.hooks.slotRemade.get(); exported != nil && f != nil {
		f()
	}
	cfg, err := parseDSN(s.cfg.LocalDSN)
	if err != nil {
		return fmt.Errorf("resync: local database: %w", err)
	}
	// COPY writes the rows as text under this session's settings, and the peer's apply session
	// reads them under textSettings: the same here, and pg_catalog alone on the search path (reg*
	// values schema-qualified), as for the decoder. resyncSchemas reads the schema in it, spelt
	// as install and verify spell it (definitionSpelling). Tandem's own session defaults, not the
	// database's (ownSession): under SERIALIZABLE, READ ONLY and DEFERRABLE ones the reads before
	// the snapshot's block (resyncPoint) waited for a safe snapshot while a serializable writer
	// was open (TestResyncLocalDeferrableDefaults).
	pinSettings(cfg, textSettings, catalogPath, definitionSpelling, noTimeouts, ownSession, allRows)
	local, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("resync: local database: %w", err)
	}
	defer local.Close(context.WithoutCancel(ctx))
	var until pglogrepl.LSN
	if exported != nil {
		if f := s.hooks.snapshotConn.get(); f != nil {
			f(local.PID())
		}
		var imported pglogrepl.LSN
		until, imported, err = importSnapshot(ctx, local, exported)
		exported.close(context.WithoutCancel(ctx))
		s.mu.Lock()
		if w := s.copyWatch; w != nil && err == nil {
			w.until = imported
			w.judge()
		}
		s.mu.Unlock()
	} else {
		until, err = s.resyncSnapshot(ctx, local, hold)
	}
	if err != nil {
		return err
	}
	if exported != nil {
		if err := s.awaitCopyWatch(ctx); err != nil {
			return err
		}
	}
	tables, err := resyncTables(ctx, local)
	if err != nil {
		return err
	}
	views, err := resyncViews(ctx, local)
	if err != nil {
		return err
	}
	if err := lockUnrewritten(ctx, local, tables); err != nil {
		return err
	}
	if err := resyncSchemas(ctx, local, s.cfg.PeerDSN); err != nil {
		return err
	}

	// The copy replaces whatever the peer holds: what it committed before is no condition
	// for a connection to it (checkApplyConn), the copy's position is (copiedLocked). A resync
	// that fails before that puts it back: the peer still holds what it held, and checkPeerHolds
	// must go on spotting one restored from an earlier backup (TestResyncFailedKeepsPeerCheck).
	s.mu.Lock()
	held := s.peerHeld
	s.peerHeld = 0
	s.mu.Unlock()
	copied := false
	defer func() {
		if !copied {
			s.mu.Lock()
			s.peerHeld = max(s.peerHeld, held)
			s.mu.Unlock()
		}
	}()
	slot, err := s.pool.get(ctx)
	if err != nil {
		return fmt.Errorf("resync: peer database: %w", err)
	}
	// One prepared on the peer holds its rows' locks, so the copy's TRUNCATE would wait for
	// it without end (the apply session has no lock timeout), and committed after the copy
	// (by the resolver) it would apply its changes twice.
	if err := peerUnprepared(ctx, slot.c.conn); err != nil {
		s.pool.put(ctx, slot, false)
		return err
	}
	// Only Tandem writes to the backup's database: a session there holding a lock on an
	// application table (a read left open in a transaction) would keep the TRUNCATE waiting
	// without end, and every later read of those tables behind it. The apply's watchdog ends it.
	stop := slot.c.watch(ctx, "resync")
	n, err := copyTables(ctx, local, slot.c.conn, tables, views, until, s.term.Load(), s.cfg.Site, s.logger)
	stop()
	s.pool.put(ctx, slot, err != nil)
	if err != nil {
		return err
	}
	s.forgetOwedHere(ctx)

	s.mu.Lock()
	if s.link != linkCatchUp || !s.running {
		s.mu.Unlock()
		return errors.New("resync: the Shipper stopped meanwhile")
	}
	s.copiedLocked(until)
	copied = true
	s.mu.Unlock()
	s.copiedAt.Store(uint64(until))
	s.copiedKnown.Store(true)
	s.logger.Info("resync: the peer holds a copy of the application tables; catching up with what was committed since",
		"tables", len(tables), "rows", n, "at", until, "in", time.Since(start).Round(time.Millisecond))
	return s.drainAndSync(ctx, hold)
}

// copiedLocked takes the journal past a copy of the application tables made at until (L):
// everything up to L is in the copy, so the journal and the slot forget it; the rest is
// streamed anew from L.
func (s *Shipper) copiedLocked(until pglogrepl.LSN) {
	keep := s.journal[:0]
	for _, e := range s.journal {
		if e.pos <= until {
			s.forgetLocked(e)
			continue
		}
		keep = append(keep, e)
	}
	clear(s.journal[len(keep):])
	s.journal = keep
	s.confirmed = max(s.confirmed, until)
	s.streamEnd = max(s.streamEnd, until)
	s.peerHeld = until // the copy's decision row; what another peer held before does not count
	if s.dec != nil {
		s.dec.Confirm(s.confirmed)
	}
	// Whatever was dropped past L is read again by a new stream from L. A gap stays until that
	// stream starts (decodeLoop ends it): the current one may deliver more events meanwhile,
	// and one taken now would move streamEnd past those it dropped, which the new stream would
	// then skip as held. Those counted as dropped up to L are in the copy; those after it are
	// counted (Backlog) once the new stream delivers them.
	s.dropped = 0
	s.restartLocked()
	s.resyncErr, s.slotLost = nil, false
	if w := s.copyWatch; w != nil {
		w.copied = true
		s.lacksLocked(w)
	}
	s.stats.Resyncs++
	s.notifyLocked()
}

// resyncPoint reads the local WAL position and the statement's snapshot (pg_snapshot text), in
// one statement with the transactions prepared on the local database, and fails if there is
// any: a tandem_ one, or one a session outside the shim prepared under a gid of its own, which
// the stream ships as it ships Tandem's (TestResyncForeignPrepared). The insert position, not the write position: a commit made with synchronous_commit = off is visible (in the copy)
// before its WAL is written, and the stream must not send it again after the copy.
// With window (the statement that takes the copy's snapshot, in its transaction), it also
// reads, right after the position, what tells commitsUnseen which commits may lie before it
// (unseenWindow).
func resyncPoint(ctx context.Context, local *pgconn.PgConn, window bool) (pglogrepl.LSN, unseenWindow, error) {
	more := `'', ''`
	if window {
		// In this order: the columns are computed one after the other.
		more = `pg_current_xact_id()::text,
  (SELECT coalesce(array_agg(backend_xid) FILTER (WHERE backend_xid IS NOT NULL), '{}')::text FROM pg_stat_activity
    WHERE datname IS DISTINCT FROM current_database())`
	}
	res, err := local.Exec(ctx, `SELECT pg_current_wal_insert_lsn()::text, `+more+`,
  (SELECT count(*) FROM pg_prepared_xacts WHERE gid LIKE 'tandem\_%' AND database = current_database()),
  (SELECT coalesce(string_agg(quote_literal(gid), ', ' ORDER BY gid), '') FROM pg_prepared_xacts
    WHERE gid NOT LIKE 'tandem\_%' AND database = current_database()),
  pg_current_snapshot()::text`).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return 0, unseenWindow{}, fmt.Errorf("resync: read the local WAL position: %w", errors.Join(err, errors.New("no row")))
	}
	row := res[0].Rows[0]
	at, err := pglogrepl.ParseLSN(string(row[0]))
	if err != nil {
		return 0, unseenWindow{}, fmt.Errorf("resync: local WAL position %q: %w", row[0], err)
	}
	if string(row[3]) != "0" {
		return 0, unseenWindow{}, fmt.Errorf("resync: %s tandem_ transaction(s) prepared on the local database: settle them first (tandem resolve)", row[3])
	}
	if len(row[4]) > 0 {
		return 0, unseenWindow{}, fmt.Errorf("resync: transactions prepared on the local database outside Tandem, which the copy would miss were they "+
			"committed after it (the stream sends their changes at their PREPARE, before the copy's position): %s; "+
			"settle them first (COMMIT PREPARED or ROLLBACK PREPARED)", row[4])
	}
	return at, unseenWindow{snap: string(row[5]), bound: string(row[1]), others: string(row[2])}, nil
}

// unseenWindow is what commitsUnseen looks through for commits that the copy's snapshot does
// not see and that may lie before its WAL position L.
type unseenWindow struct {
	snap string // the snapshot (pg_snapshot text)
	// bound is an xid (xid8 text) the copy's transaction took right after reading L: every
	// commit before L has a lower one. others are the xids (xid[] text) of the transactions of
	// the server's other databases in progress then, in neither the copy nor the stream.
	// Without them, another application's commits since — on the same server, and no hold
	// stops them — counted, and its steady writes made every resync fail
	// (TestResyncOtherDatabaseCommits). None is NULL: commitsUnseen leaves them out with
	// "<> ALL", never true over an array holding a NULL (the backend_xid of a session with no
	// xid, such as every background process), and so counted no ended commit at all
	// (TestResyncCommitEndedBeforeLooks).
	bound, others string
}

// The snapshot of the copy and the WAL position L are read in one statement, yet not at one
// instant: PostgreSQL writes a commit's WAL record before the commit is visible, so a commit
// may lie before L and not be in the snapshot — for long, when it waits for a synchronous
// standby of the local database (visible only once the standby answers). The hold does not
// stop every commit (a write the lexer took for a read outside a transaction block commits
// without the gate, and a session outside the shim), and such a commit would be in neither the copy nor the stream
// after L: lost on the peer. So resyncSnapshot looks, once the WAL up to L is flushed, for
// commits the snapshot does not see that may lie before L: those that have ended committed
// since (pg_xact_status), and those still waiting for a synchronous standby (pg_stat_activity:
// SyncRep; PostgreSQL calls them in progress until the standby answers). Finding one, it takes
// the snapshot again, until none is left (resyncWindowWait at most). The looks are not one
// instant either, and a commit goes from one to the other: it waits for the standby once its
// commit record is flushed, and ends once the standby answers. So waiting commits are looked
// for before and after the ended ones, in one statement: one that began waiting after the
// first look is waiting at the last or ended at the middle one; one that ended after the first
// was waiting at it. With the ended ones first and the waiting ones after, one whose standby
// answered between the two was counted by neither (TestResyncStandbyAnswersBetweenLooks). A
// commit that escapes the three looks is one that spent them between its flush and its wait
// for the standby, or between the standby's answer and its end: an instant each, unless its
// backend is kept off the CPU right there. The waits of sessions of other roles are seen only
// by a role with pg_read_all_stats (or a superuser).
const (
	resyncWindowWait = 30 * time.Second
	resyncFlushWait  = time.Second
)

// resyncSnapshot opens, on local, the REPEATABLE READ transaction the copy reads in — with
// commits held (hold; nil: none) while it takes its snapshot — and returns the WAL position L
// that agrees with it: every commit before L is in it, every later one is not.
func (s *Shipper) resyncSnapshot(ctx context.Context, local *pgconn.PgConn, hold func(ctx context.Context) (release func(), err error)) (pglogrepl.LSN, error) {
	db, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return 0, fmt.Errorf("resync: local database: %w", err)
	}
	defer db.Close()
	deadline := time.Now().Add(resyncWindowWait)
	for pause := 50 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		until, late, err := s.takeSnapshot(ctx, local, db, hold)
		if err != nil {
			return 0, err
		}
		if late == 0 {
			return until, nil
		}
		if _, err := local.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
			return 0, fmt.Errorf("resync: local snapshot: %w", err)
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("resync: %d commit(s) on the local database may lie before the WAL position of every snapshot taken, unseen by it "+
				"(waiting for a synchronous standby of the local database?): the copy would miss them; try again once they are visible", late)
		}
		s.logger.Info("resync: a commit its snapshot does not see may lie before its WAL position; taking the snapshot again", "commits", late)
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("resync: local snapshot: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
}

// takeSnapshot is one try of resyncSnapshot: it returns L, in the open transaction on local,
// and the count of commits that may lie before L unseen by its snapshot (commitsUnseen, on db),
// counted before commits are released: those held then commit after L, unseen and rightly so.
func (s *Shipper) takeSnapshot(ctx context.Context, local *pgconn.PgConn, db *sql.DB, hold func(ctx context.Context) (release func(), err error)) (pglogrepl.LSN, int, error) {
	release := func() {}
	if hold != nil {
		r, err := hold(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("resync: hold commits: %w", err)
		}
		held := time.Now()
		release = sync.OnceFunc(func() {
			r()
			s.logger.Info("resync: commits held for the snapshot", "for", time.Since(held).Round(time.Microsecond))
		})
		defer release()
	}
	// A transaction prepared at the snapshot and committed after it (by the resolver, which
	// the hold does not stop) would be in neither the copy nor what is shipped after L: the
	// stream sends its changes at its PREPARE, before L. So none may be prepared then. Checked
	// first before the snapshot: with commits held none is prepared after that (a PREPARE is
	// part of a commit; the resolver only ends them). Checked again with the snapshot, for a
	// Resync without hold and for one a session outside the shim prepared meanwhile.
	if _, _, err := resyncPoint(ctx, local, false); err != nil {
		return 0, 0, err
	}
	if _, err := local.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").ReadAll(); err != nil {
		return 0, 0, fmt.Errorf("resync: local snapshot: %w", err)
	}
	// The snapshot is taken by this first statement.
	until, w, err := resyncPoint(ctx, local, true)
	if err != nil {
		return 0, 0, err
	}
	late, err := commitsUnseen(ctx, db, w, until, s.hooks.lookGap.get())
	return until, late, err
}

// awaitCopyWatch waits, before the copy, until the stream of the slot Resync made anew has
// passed the copy's position (copyWatch judged), and fails with ErrNeedsResync when it found a
// transaction the copy lacks. Found only once the copy had committed on the peer, whose
// transaction deletes the row saying the peer is owed one (owedGID), and with the slot
// confirmed past it, the Shipper alone knew: after a restart its catch-up shipped on from the
// copy's position and called the peer synced without it (TestResyncLostSlotPreparedAcrossRestart).
// The decoder, waiting to retry a slot that was gone, is woken.
func (s *Shipper) awaitCopyWatch(ctx context.Context) error {
	// The stream passes a position only once the WAL up to it is flushed, and the copy's may
	// end in the WAL of a transaction still open, which nothing flushes for seconds (the
	// background writer's next record of the transactions running, every 15): a message
	// committed now flushes it and comes after it in the stream (as catch-up does, currentWAL).
	db, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return fmt.Errorf("resync: local database: %w", err)
	}
	defer db.Close()
	if _, err := currentWAL(ctx, db); err != nil {
		return fmt.Errorf("resync: %w", err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		w, running := s.copyWatch, s.running && s.link == linkCatchUp
		if w == nil || w.judged || !running {
			lacking := ""
			if w != nil {
				lacking = w.lacking
			}
			s.mu.Unlock()
			switch {
			case lacking != "":
				return fmt.Errorf("resync: transaction %s was prepared before the position of the copy of the application tables and committed after it: "+
					"the copy would lack it: %w", lacking, ErrNeedsResync)
			case !running:
				return errors.New("resync: the Shipper stopped meanwhile")
			}
			return nil
		}
		if s.dec == nil {
			s.restartLocked()
		}
		s.mu.Unlock()
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("resync: wait for the stream of the slot made anew to pass the copy's position: %w", ctx.Err())
		}
	}
}

// importSnapshot opens, on local, the REPEATABLE READ transaction the copy reads in, in the
// snapshot exported with the slot made anew (exportedSlot), and returns the slot's first
// position as L: every commit before it is in the snapshot, every later one is streamed — by
// how PostgreSQL makes them, with no commit between, so neither commits held (the slot's
// creation waits for the write transactions open then to end, which a hold would keep from
// ending) nor commitsUnseen's looks are wanted. It refuses as resyncPoint does while a
// transaction is prepared on the local database; imported is the local WAL position once it
// looked, the end of what copyWatch looks at.
func importSnapshot(ctx context.Context, local *pgconn.PgConn, exp *exportedSlot) (at, imported pglogrepl.LSN, err error) {
	if _, err := local.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").ReadAll(); err != nil {
		return 0, 0, fmt.Errorf("resync: local snapshot: %w", err)
	}
	if _, err := local.Exec(ctx, "SET TRANSACTION SNAPSHOT "+sqlLiteral(exp.snapshot)).ReadAll(); err != nil {
		return 0, 0, fmt.Errorf("resync: local snapshot: import the one the new slot exported: %w", err)
	}
	if _, _, err := resyncPoint(ctx, local, false); err != nil {
		return 0, 0, err
	}
	// The end of what copyWatch looks at, read after resyncPoint looked for transactions still
	// prepared: one committed before that look has its COMMIT PREPARED before this position.
	// resyncPoint's own, read before the look, left one committed in between unwatched
	// (TestResyncLostSlotCommitPreparedDuringImport).
	res, err := local.Exec(ctx, "SELECT pg_current_wal_insert_lsn()::text").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return 0, 0, fmt.Errorf("resync: read the local WAL position: %w", errors.Join(err, errors.New("no row")))
	}
	if imported, err = pglogrepl.ParseLSN(string(res[0].Rows[0][0])); err != nil {
		return 0, 0, fmt.Errorf("resync: local WAL position %q: %w", res[0].Rows[0][0], err)
	}
	return exp.at, imported, nil
}

// commitsUnseen counts the commits that w's snapshot does not see and that may lie before
// until, after waiting (resyncFlushWait at most) until the local WAL is flushed up to until:
// transactions in progress at the snapshot or begun after it and before w.bound that have
// committed by now, but those of other databases (w.others), and every commit of this
// database still waiting for a synchronous standby (one of another database is in neither the
// copy nor the stream: TestResyncOtherDatabaseSyncRep), looked for before and after the ended
// ones.
func commitsUnseen(ctx context.Context, db *sql.DB, w unseenWindow, until pglogrepl.LSN, gap func(look int) string) (int, error) {
	for wait := time.Now().Add(resyncFlushWait); ; {
		var flushed bool
		if err := db.QueryRowContext(ctx, `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, until.String()).Scan(&flushed); err != nil {
			return 0, fmt.Errorf("resync: read the local WAL flush position: %w", err)
		}
		if flushed || time.Now().After(wait) {
			break
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("resync: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Each look after the gap of its own, one column each, computed one after the other.
	looks := []string{waitingLook, endedLook, waitingLook}
	cols := make([]string, 0, 2*len(looks))
	for i, l := range looks {
		g := "0"
		if gap != nil {
			g = cmp.Or(gap(i), g)
		}
		cols = append(cols, g, l)
	}
	counts := make([]int, len(cols))
	dest := make([]any, len(cols))
	for i := range counts {
		dest[i] = &counts[i]
	}
	err := db.QueryRowContext(ctx, `WITH s AS (SELECT $1::pg_snapshot AS snap)
SELECT `+strings.Join(cols, ", "), w.snap, w.bound, w.others).Scan(dest...)
	if err != nil {
		return 0, fmt.Errorf("resync: look for commits the snapshot does not see: %w", err)
	}
	// Each look's count follows its gap's: waiting before, ended, waiting after (one waiting at
	// both counts once).
	return max(counts[1], counts[5]) + counts[3], nil
}

// The looks of commitsUnseen, in its statement: endedLook counts the transactions that w's
// snapshot (s.snap) does not see, begun before w.bound ($2), and committed now, but those of
// other databases ($3); waitingLook counts this database's commits waiting for a synchronous
// standby now.
const (
	endedLook = `(SELECT count(*) FROM (
    SELECT x FROM s, pg_snapshot_xip(s.snap) AS x
    UNION ALL
    SELECT g::text::xid8 FROM s, generate_series(pg_snapshot_xmax(s.snap)::text::bigint, $2::text::bigint - 1) AS g
  ) t (x) WHERE pg_xact_status(t.x) = 'committed' AND xid(t.x) <> ALL ($3::xid[]))`
	waitingLook = `(SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'IPC' AND wait_event = 'SyncRep' AND datname = current_database())`
)

// resyncSchemas fails, naming each difference, when the application schema of the local
// database in the copy's snapshot (read in local's open transaction, which holds the copied
// tables locked: lockUnrewritten) and the peer's differ. The copy brings rows over, not
// definitions, and DDL reaches the peer only in the stream: DDL the peer lacks — committed
// while it needed resync (shipping had stopped), in WAL a lost slot no longer holds, or the
// very DDL the peer refused — lies before the copy's position, which the journal and the slot
// then forget. Copied over such a peer, a table the master dropped stayed there with its rows
// (or a constraint, a column type), and the peer was called synced with a schema that differs;
// a table or column it lacked failed the copy. The operator runs that DDL on the peer's
// database first (an operator's session there is not the shim's: no guard refuses it).
func resyncSchemas(ctx context.Context, local *pgconn.PgConn, peerDSN string) error {
	lq := pgconnSchemaQuery(local)
	ls, err := readAppSchemaWith(ctx, lq)
	if err != nil {
		return fmt.Errorf("resync: local database: %w", err)
	}
	// The peer's is read under the local session's settings: constants in a CHECK constraint
	// or a partition bound are printed after IntervalStyle, DateStyle or TimeZone, and the
	// local session's are pinned (Resync) where a plain connection takes its database's — the
	// same schema read differently (TestResyncSchemaUnderSettings); and names and string
	// literals spelt alike (definitionSpelling: TestResyncDefinitionSpelling).
	tz, err := lq(ctx, "SELECT current_setting('TimeZone')")
	if err != nil || len(tz) != 1 || len(tz[0]) != 1 {
		return fmt.Errorf("resync: local database: read TimeZone: %w", errors.Join(err, errors.New("no row")))
	}
	cfg, err := parseDSN(peerDSN)
	if err != nil {
		return fmt.Errorf("resync: peer database: %w", err)
	}
	// READ COMMITTED and without the database's timeouts: under SERIALIZABLE, READ ONLY and
	// DEFERRABLE defaults each read waited for a safe snapshot, for as long as a serializable
	// writer was open on the peer — a blocker the copy would end (TestResyncDeferrableDefaults).
	pinSettings(cfg, textSettings, catalogPath, definitionSpelling, noTimeouts, ownSession,
		map[string]string{"timezone": tz[0][0]})
	peer, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("resync: peer database: %w", err)
	}
	defer peer.Close(context.WithoutCancel(ctx))
	ps, err := readAppSchemaWith(ctx, pgconnSchemaQuery(peer))
	if err != nil {
		return fmt.Errorf("resync: peer database: %w", err)
	}
	if diffs := diffAppSchemas(ls, ps); len(diffs) > 0 {
		return fmt.Errorf("resync: the application schemas of the local and the peer database differ (the copy brings rows, "+
			"not definitions): run on the peer database the DDL it never got — or, for the database's encoding or "+
			"collation, make it anew with the local one's —, then resync again:\n  %s", listDiffs(diffs))
	}
	return nil
}

// pgconnSchemaQuery runs readAppSchemaWith's queries on c (NULL as "").
func pgconnSchemaQuery(c *pgconn.PgConn) schemaQuery {
	return func(ctx context.Context, q string) ([][]string, error) {
		res, err := c.Exec(ctx, q).ReadAll()
		if err != nil {
			return nil, err
		}
		var out [][]string
		for _, r := range res {
			for _, row := range r.Rows {
				vals := make([]string, len(row))
				for i, v := range row {
					vals[i] = string(v)
				}
				out = append(out, vals)
			}
		}
		return out, nil
	}
}

// peerUnprepared fails if a transaction is prepared on the peer's database: a tandem_ one, or
// one prepared there under a gid of its own, which no resolver settles. Either holds its rows'
// locks, so the copy's TRUNCATE waited for it without end (the watchdog spares prepared
// transactions), and committed after the copy it would put its changes on top of it
// (TestResyncPeerForeignPrepared).
func peerUnprepared(ctx context.Context, peer *pgconn.PgConn) error {
	n, others, err := peerPrepared(ctx, peer, 0)
	if err != nil {
		return fmt.Errorf("resync: count the peer's prepared transactions: %w", err)
	}
	if n != "0" {
		return fmt.Errorf("resync: %s tandem_ transaction(s) prepared on the peer database: settle them first (tandem resolve)", n)
	}
	if others != "" {
		return fmt.Errorf("resync: transactions prepared on the peer database outside Tandem, whose locks the copy would wait for "+
			"and whose changes, committed after it, would land on top of it: %s; settle them first (COMMIT PREPARED or ROLLBACK PREPARED)", others)
	}
	return nil
}

// peerPrepared reads the transactions prepared on c's database: how many are Tandem's (tandem_),
// and the others, each as its quoted gid and owner, in one line to show an operator. With a
// waiter pid other than 0 it counts only those holding a lock that session waits for (a
// prepared transaction's locks show without a pid, under the virtual transaction that holds
// its xid's lock): the apply's watchdog names what blocks it (TestApplyPeerForeignPrepared).
func peerPrepared(ctx context.Context, c *pgconn.PgConn, waiter uint32) (tandem, others string, err error) {
	var w []byte
	if waiter != 0 {
		w = []byte(strconv.FormatUint(uint64(waiter), 10))
	}
	// From the waiter's ungranted locks (mostly one) to the prepared transactions holding the
	// same, then to their xids: each step scans the pg_locks snapshot once per row it starts
	// from. Joined the other way round, each lock a prepared transaction holds against each lock
	// there, it took seconds once prepared transactions held some thousands
	// (TestApplyWatchdogForeignPreparedManyLocks).
	res := c.ExecParams(ctx, `WITH l AS MATERIALIZED (SELECT * FROM pg_locks WHERE $1::int IS NOT NULL),
w AS MATERIALIZED (SELECT * FROM l WHERE l.pid = $1 AND NOT l.granted),
h AS MATERIALIZED (SELECT DISTINCT h.virtualtransaction FROM w JOIN l h ON h.pid IS NULL AND h.granted
  AND (h.locktype, h.database, h.relation, h.page, h.tuple, h.virtualxid, h.transactionid, h.classid, h.objid, h.objsubid)
    IS NOT DISTINCT FROM (w.locktype, w.database, w.relation, w.page, w.tuple, w.virtualxid, w.transactionid, w.classid, w.objid, w.objsubid)),
x AS MATERIALIZED (SELECT x.transactionid FROM h JOIN l x ON x.virtualtransaction = h.virtualtransaction
  WHERE x.locktype = 'transactionid' AND x.pid IS NULL)
SELECT count(*) FILTER (WHERE starts_with(p.gid, 'tandem_')),
  coalesce(string_agg(format('%L (owner %I)', p.gid, p.owner), ', ' ORDER BY p.gid) FILTER (WHERE NOT starts_with(p.gid, 'tandem_')), '')
FROM pg_prepared_xacts p WHERE p.database = current_database() AND ($1::int IS NULL OR p.transaction IN (SELECT x.transactionid FROM x))`,
		[][]byte{w}, nil, nil, nil).Read()
	if res.Err != nil {
		return "", "", res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 2 {
		return "", "", errors.New("no row")
	}
	return string(res.Rows[0][0]), string(res.Rows[0][1]), nil
}

// catalogPath is a search path of pg_catalog alone: sessions that write values as text for the
// other database run under it, so that reg* values (regclass, regtype, …) come
// schema-qualified and read the same whatever that database's search_path.
var catalogPath = map[string]string{"search_path": "pg_catalog"}

// allRows makes a session that reads every row of a table (resync's copy, verify) fail where
// row-level security would hide some from its user, instead of reading them filtered: under a
// policy that applies to local_dsn's user (FORCE ROW LEVEL SECURITY on a table it owns, or one
// it does not own) a COPY or SELECT silently leaves rows out — a resync would drop them from
// the peer and a verify call differing databases identical.
var allRows = map[string]string{"row_security": "off"}

// resyncTable is one table that holds rows, with the columns a COPY carries (not generated;
// none for a table of no other column).
type resyncTable struct {
	name     string // quoted, schema-qualified
	cols     string // quoted, comma-separated
	filenode string // its relfilenode in the copy's snapshot (lockUnrewritten)
}

// resyncTables lists the application tables that hold rows (partitions rather than their
// partitioned parents), in the snapshot of local's open transaction.
func resyncTables(ctx context.Context, local *pgconn.PgConn) ([]resyncTable, error) {
	res, err := local.Exec(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
  coalesce(string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), ''), c.relfilenode::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
WHERE c.relkind = 'r' AND `+shippedRelFilter+`
GROUP BY 1, c.relfilenode ORDER BY 1`).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("resync: list tables: %w", err)
	}
	var out []resyncTable
	for _, r := range res {
		for _, row := range r.Rows {
			out = append(out, resyncTable{name: string(row[0]), cols: string(row[1]), filenode: string(row[2])})
		}
	}
	return out, nil
}

// resyncView is one materialized view of the application schemas: its rows are not copied
// (nor shipped: each database computes them, at its CREATE and each REFRESH), so the peer
// computes them over the copied tables, or leaves it unpopulated as the local one is.
type resyncView struct {
	name      string // quoted, schema-qualified
	populated bool   // in the copy's snapshot
}

// resyncViews lists the application's materialized views in the snapshot of local's open
// transaction, each after those it reads through (directly or through views): refreshed in
// this order, a view reads the others computed anew. A view whose query calls a function of
// the database's own (directly or through the views it reads) may read views through it, which
// pg_depend does not tell: it comes after every view that calls none
// (TestResyncMaterializedViewThroughFunction). Two such views that read each other through
// functions keep the order of their names.
func resyncViews(ctx context.Context, local *pgconn.PgConn) ([]resyncView, error) {
	res, err := local.Exec(ctx, `WITH RECURSIVE dep (rel, ref) AS (
  SELECT DISTINCT r.ev_class, d.refobjid FROM pg_rewrite r
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
  WHERE r.rulename = '_RETURN' AND d.refobjid <> r.ev_class -- the queries of views: no cycles (rules on tables may make them)
), mv AS (
  SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, c.relispopulated
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'm' AND c.relpersistence = 'p' AND `+appSchemaFilter+`
), depth (rel, d) AS (
  SELECT oid, 0 FROM mv
  UNION ALL
  SELECT dep.rel, depth.d + 1 FROM depth JOIN dep ON dep.ref = depth.rel
), fn (rel) AS ( -- views calling a function not built in (FirstNormalObjectId), or reading one that does
  SELECT r.ev_class FROM pg_rewrite r
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_proc'::regclass
  WHERE r.rulename = '_RETURN' AND d.refobjid >= 16384
  UNION
  SELECT dep.rel FROM fn JOIN dep ON dep.ref = fn.rel
)
SELECT mv.name, mv.relispopulated::text FROM mv JOIN (SELECT rel, max(d) AS d FROM depth GROUP BY rel) l ON l.rel = mv.oid
ORDER BY mv.oid IN (SELECT rel FROM fn), l.d, mv.name`).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("resync: list materialized views: %w", err)
	}
	var out []resyncView
	for _, r := range res {
		for _, row := range r.Rows {
			out = append(out, resyncView{name: string(row[0]), populated: string(row[1]) == "true"})
		}
	}
	return out, nil
}

// lockUnrewritten takes, in local's open transaction (the copy's snapshot), a lock on every
// table the copy reads, and fails if one was truncated or rewritten since the snapshot. Commits
// go on while the copy runs, and TRUNCATE and the table-rewriting forms of ALTER TABLE are not
// MVCC-safe: committed after the snapshot, they leave the table reading empty to it. The copy
// of such a table was empty, and the DDL, shipped after L, then ran on that empty table on the
// peer: every row of it lost there, the peer called synced. Locked, the tables cannot be
// rewritten until the copy ends (such DDL waits for it); one rewritten between the snapshot and
// the lock is told by its storage (relfilenode), no longer the one the snapshot sees.
func lockUnrewritten(ctx context.Context, local *pgconn.PgConn, tables []resyncTable) error {
	if len(tables) == 0 {
		return nil
	}
	names := make([]string, len(tables))
	vals := make([]string, len(tables))
	for i, t := range tables {
		names[i] = t.name
		vals[i] = fmt.Sprintf("(%s, %s::bigint)", sqlLiteral(t.name), sqlLiteral(t.filenode))
	}
	if _, err := local.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS SHARE MODE").ReadAll(); err != nil {
		return fmt.Errorf("resync: lock the application tables: %w", err)
	}
	res, err := local.Exec(ctx, `SELECT string_agg(t, ', ') FROM (VALUES `+strings.Join(vals, ", ")+`) v (t, f)
WHERE pg_relation_filenode(t::regclass)::bigint IS DISTINCT FROM f`).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return fmt.Errorf("resync: check the application tables: %w", errors.Join(err, errors.New("no row")))
	}
	if changed := res[0].Rows[0][0]; changed != nil {
		return fmt.Errorf("resync: %s truncated or rewritten (TRUNCATE, ALTER TABLE) after the copy's snapshot: it reads empty to it; try again", changed)
	}
	return nil
}

// owedGID is the key of the decision row that says, on the peer, that it is owed a copy of
// site's tables: written before a resync makes site's lost slot anew (renewLostSlot), deleted
// by the copy that commits (copyTables). Until then catch-up refuses (checkCopyOwed).
func owedGID(site string) string { return "tandem_" + site + "_owed" }

// forgetOwedHere deletes, once a copy of this site's tables committed on the peer, the rows on
// the local database that said it was owed a copy of the peer site's (owedGID: that site's
// resync made its lost slot anew and was refused or failed, and then this site took over). The
// peer's database now holds this one's rows: what the peer's lost slot held is gone from both,
// and left in place the row refused the peer's catch-up for good once it was master again,
// calling for one more full copy (TestResyncOwedClearedByOtherSite). A failure is logged: the
// row then asks for that copy.
func (s *Shipper) forgetOwedHere(ctx context.Context) {
	db, err := OpenDB(s.cfg.LocalDSN)
	if err == nil {
		defer db.Close()
		qctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		defer cancel()
		_, err = db.ExecContext(qctx, `DELETE FROM tandem.decisions WHERE gid LIKE 'tandem\_%\_owed'`)
	}
	if err != nil {
		s.logger.Warn("resync: cannot delete, on the local database, the mark that it is owed a copy of the peer site's tables; "+
			"with the peer master again, its catch-up will ask for a resync", "err", err)
	}
}

// resyncGID is the key of the decision row that records, on the peer, the stream position of
// the last copy of site's tables (copyTables; Shipper.copiedPoint).
func resyncGID(site string) string { return "tandem_" + site + "_resync" }

// copyTables replaces the peer's rows of tables by local's (in its open snapshot), and computes
// its materialized views over them (views; unpopulated where local's are), in one peer
// transaction that records until as the source's replication origin position, and as the lsn
// of the decision row of site's copies (resyncGID), and deletes the row it is owed (owedGID).
// peer is an apply connection: session_replication_role = replica, a replication origin set
// up. With a term (above 0), the peer's term record is checked first and again before the
// commit, as an apply checks it (DESIGN §3 fencing): a master that lost its role without
// knowing yet must not replace the rows of its successor's database; that refusal wraps
// ErrStaleTerm. It returns the rows copied.
func copyTables(ctx context.Context, local, peer *pgconn.PgConn, tables []resyncTable, views []resyncView, until pglogrepl.LSN, term uint64, site string, logger *slog.Logger) (int64, error) {
	mark, owed := resyncGID(site), owedGID(site)
	exec := func(sql string) error {
		_, err := peer.Exec(ctx, sql).ReadAll()
		return err
	}
	rollback := func(err error) (int64, error) {
		if peer.TxStatus() != 'I' {
			_ = exec("ROLLBACK")
		}
		return 0, err
	}
	checkTerm := func() error {
		if term == 0 {
			return nil
		}
		_, err := peer.ExecParams(ctx, "SELECT tandem.check_term($1, $2)",
			[][]byte{[]byte(strconv.FormatUint(term, 10)), []byte(site)}, nil, nil, nil).Close()
		if pgErrCode(err) == sqlstateStaleTerm {
			return fmt.Errorf("resync: peer: %w: %w", ErrStaleTerm, err)
		}
		if err != nil {
			return fmt.Errorf("resync: peer: term check: %w", err)
		}
		return nil
	}
	if err := exec("BEGIN"); err != nil {
		return 0, fmt.Errorf("resync: peer: %w", err)
	}
	if err := checkTerm(); err != nil {
		return rollback(err)
	}
	if _, err := peer.ExecParams(ctx, "SELECT pg_replication_origin_xact_setup($1, now())",
		[][]byte{[]byte(until.String())}, nil, nil, nil).Close(); err != nil {
		return rollback(fmt.Errorf("resync: peer: replication origin: %w", err))
	}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.name
		}
		// CASCADE: tables outside the list may refer to one in it — a partitioned table (its
		// foreign key sits on the parent; its partitions are in the list), an UNLOGGED one
		// (never shipped) — and PostgreSQL refuses to empty a table they refer to without
		// them, whatever session_replication_role says. ONLY: an inheritance parent's children
		// are in the list but an UNLOGGED one, whose rows the peer keeps as it keeps those of
		// every UNLOGGED table (TestResyncKeepsUnloggedChild).
		if err := exec("TRUNCATE ONLY " + strings.Join(names, ", ONLY ") + " CASCADE"); err != nil {
			return rollback(fmt.Errorf("resync: peer: truncate the application tables: %w", err))
		}
	}
	// A CHECK constraint added NOT VALID, of a table or a domain, holds over rows from before
	// it that may break it (the peer got them before the constraint too), yet COPY checks
	// every row against it: the copy of such rows failed, every resync refused
	// (TestResyncNotValidCheck). Each is dropped for the copy and made again NOT VALID, as it
	// was, in the copy's transaction.
	// Dropped parents first: a child's that it also inherits goes only once its parent's is
	// gone (TestResyncNotValidCheckInherited); made again children first, for the parent's to
	// merge into theirs as it had. An inherited one validated on a child (a partition) comes
	// back NOT VALID with its parent's: the rows are the same, the planner no longer relies on
	// it there. Validating it again was tried and reverted: which to validate is the local
	// database's word, under the peer's names, and not where the peer keeps rows of its own
	// (an UNLOGGED child or grandchild), each case a resync that failed every time.
	unchecked, err := notValidChecks(ctx, peer)
	if err != nil {
		return rollback(fmt.Errorf("resync: peer: list the CHECK constraints NOT VALID: %w", err))
	}
	for _, c := range unchecked {
		if err := exec(fmt.Sprintf("ALTER %s DROP CONSTRAINT %s", c.on, c.name)); err != nil {
			return rollback(fmt.Errorf("resync: peer: drop the constraint %s NOT VALID of %s for the copy: %w", c.name, c.on, err))
		}
	}
	var rows int64
	for _, t := range tables {
		pr, pw := io.Pipe()
		out := make(chan error, 1)
		// A table of no column but generated ones (or none at all) is copied without a column
		// list, which leaves generated columns out: one empty line per row.
		cols := ""
		if t.cols != "" {
			cols = " (" + t.cols + ")"
		}
		go func() {
			_, err := local.CopyTo(ctx, pw, fmt.Sprintf("COPY %s%s TO STDOUT", t.name, cols))
			pw.CloseWithError(err)
			out <- err
		}()
		tag, err := peer.CopyFrom(ctx, pr, fmt.Sprintf("COPY %s%s FROM STDIN", t.name, cols))
		pr.CloseWithError(err) // unblocks the writer if the peer stopped reading
		if lerr := <-out; lerr != nil {
			return rollback(fmt.Errorf("resync: copy %s from the local database: %w", t.name, lerr))
		}
		if err != nil {
			return rollback(fmt.Errorf("resync: copy %s to the peer: %w", t.name, err))
		}
		rows += tag.RowsAffected()
	}
	for i := len(unchecked) - 1; i >= 0; i-- {
		c := unchecked[i]
		if err := exec(fmt.Sprintf("ALTER %s ADD CONSTRAINT %s %s", c.on, c.name, c.def)); err != nil {
			return rollback(fmt.Errorf("resync: peer: make the constraint %s NOT VALID of %s again: %w", c.name, c.on, err))
		}
	}
	// Copied as the tables were, a view kept what the peer computed over its old rows, or
	// stayed unpopulated (a peer whose schema came from pg_dump --schema-only): the databases
	// differed, and after a failover the new master served those rows or refused every read of
	// the view (TestResyncMaterializedViews).
	// One whose query fails over the copied rows (it read a table it may not on the peer, or
	// computes an error from rows the local database got since its last REFRESH) is left as it
	// was, and logged: it fails no copy of the tables.
	for _, v := range views {
		q := "REFRESH MATERIALIZED VIEW " + v.name
		if !v.populated {
			q += " WITH NO DATA"
		}
		if err := exec("SAVEPOINT tandem_refresh"); err != nil {
			return rollback(fmt.Errorf("resync: peer: %w", err))
		}
		if err := exec(q); err != nil {
			if rerr := exec("ROLLBACK TO SAVEPOINT tandem_refresh"); rerr != nil {
				return rollback(fmt.Errorf("resync: peer: %s: %w", q, errors.Join(err, rerr)))
			}
			logger.Warn("resync: a materialized view could not be computed on the peer over the copied tables; it keeps its rows there (REFRESH it on both databases through the shim)",
				"view", v.name, "err", err)
		}
	}
	// The slot's confirmed position reaches disk only at a checkpoint: after a crash of the
	// local database the stream may send again what the copy holds, which has no decision rows.
	// This row, committed with the copy, tells shipping to skip it (shipOn).
	if _, err := peer.ExecParams(ctx, `INSERT INTO tandem.decisions (gid, lsn) VALUES ($1, $2)
ON CONFLICT (gid) DO UPDATE SET lsn = EXCLUDED.lsn, at = now()`,
		[][]byte{[]byte(mark), []byte(until.String())}, nil, nil, nil).Close(); err != nil {
		return rollback(fmt.Errorf("resync: peer: record the copy's position: %w", err))
	}
	if _, err := peer.ExecParams(ctx, `DELETE FROM tandem.decisions WHERE gid = $1`, [][]byte{[]byte(owed)}, nil, nil, nil).Close(); err != nil {
		return rollback(fmt.Errorf("resync: peer: %w", err))
	}
	// A successor that took a newer term while the copy ran: its term record is not among the
	// copy's tables, and so not locked by it.
	if err := checkTerm(); err != nil {
		return rollback(err)
	}
	if err := exec("COMMIT"); err != nil {
		return rollback(fmt.Errorf("resync: peer: commit: %w", err))
	}
	return rows, nil
}

// notValidCheck is a CHECK constraint NOT VALID of the peer's (notValidChecks).
type notValidCheck struct {
	on   string // TABLE or DOMAIN and its name, as ALTER takes them
	name string // quoted
	def  string // pg_get_constraintdef: CHECK (...) NOT VALID
}

// notValidChecks lists the CHECK constraints NOT VALID of the application's tables (those
// declared on each, not those it inherits only, which go and come with its parent's) and
// domains, on peer, parents before their children.
func notValidChecks(ctx context.Context, peer *pgconn.PgConn) ([]notValidCheck, error) {
	res, err := peer.Exec(ctx, `WITH RECURSIVE d (rel, depth) AS (
  SELECT inhrelid, 1 FROM pg_inherits
  UNION ALL
  SELECT i.inhrelid, d.depth + 1 FROM pg_inherits i JOIN d ON i.inhparent = d.rel)
SELECT CASE WHEN k.contypid <> 0 THEN 'DOMAIN ' || k.contypid::regtype::text ELSE 'TABLE ' || k.conrelid::regclass::text END,
  quote_ident(k.conname), pg_get_constraintdef(k.oid)
FROM pg_constraint k
LEFT JOIN pg_class c ON c.oid = k.conrelid
LEFT JOIN pg_type t ON t.oid = k.contypid
JOIN pg_namespace n ON n.oid = coalesce(c.relnamespace, t.typnamespace)
WHERE k.contype = 'c' AND NOT k.convalidated AND (k.contypid <> 0 OR (k.conislocal AND c.relkind IN ('r', 'p')))
  AND `+appSchemaFilter+`
ORDER BY coalesce((SELECT max(depth) FROM d WHERE d.rel = k.conrelid), 0), 1, 2`).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []notValidCheck
	for _, r := range res {
		for _, row := range r.Rows {
			out = append(out, notValidCheck{on: string(row[0]), name: string(row[1]), def: string(row[2])})
		}
	}
	return out, nil
}

// renewLostSlot makes the slot anew if PostgreSQL invalidated it or it is gone — as the database says, not
// as far as the decoder has noticed (a resync may come before its next stream fails): dropped
// and created again while commits go on (creating a slot waits for the write transactions open
// then to end, which a hold would keep from ending).
func (s *Shipper) renewLostSlot(ctx context.Context) (*exportedSlot, error) {
	db, err := OpenDB(s.cfg.LocalDSN)
	if err != nil {
		return nil, fmt.Errorf("resync: local database: %w", err)
	}
	defer db.Close()
	info, err := ReadSlot(ctx, db, SlotName(s.cfg.Site))
	if err != nil {
		return nil, fmt.Errorf("resync: %w", err)
	}
	if !info.Gone() {
		return nil, nil
	}
	// Refused before the slot is made anew, not only once commits are held for the snapshot:
	// PostgreSQL's creation of a slot waits for every transaction in progress, a prepared one
	// too, and one in doubt has no end of its own (TestResyncLostSlotPreparedLocally). With the
	// slot lost, shipping stopped and the shim commits alone: one prepared now is not a dual
	// commit about to finish.
	// Every one on the server counts, whatever its name or database: the slot's creation waits
	// for them all (TestResyncLostSlotPreparedElsewhere).
	var prepared int
	var others string
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE gid LIKE 'tandem\_%' AND database = current_database()),
  coalesce(string_agg(quote_literal(gid) || ' (database ' || database || ')', ', ' ORDER BY gid)
    FILTER (WHERE NOT (gid LIKE 'tandem\_%' AND database = current_database())), '')
FROM pg_prepared_xacts`).Scan(&prepared, &others); err != nil {
		return nil, fmt.Errorf("resync: count the local database's prepared transactions: %w", err)
	}
	if prepared > 0 {
		return nil, fmt.Errorf("resync: %d tandem_ transaction(s) prepared on the local database: settle them first (tandem resolve)", prepared)
	}
	if others != "" {
		return nil, fmt.Errorf("resync: transactions prepared on the local database's server, which making the replication slot anew would wait for: %s; "+
			"settle them first (COMMIT PREPARED or ROLLBACK PREPARED)", others)
	}
	// The lost slot is the sign that the peer lacks what it held: once made anew, nothing else
	// would tell a later catch-up (of this process or, after a restart, the next) that the peer
	// is owed a copy, were this resync refused, failed or killed before its copy commits
	// (TestResyncRefusedKeepsSlotLoss). So the peer records it first, in a transaction that
	// checks the peer's term record first, as the copy does (DESIGN §3 fencing): a master that
	// lost its role without knowing yet left the mark in its successor's database, which then
	// needed a full resync for nothing, and made its own slot anew, before the copy refused it
	// (TestResyncLostSlotRefusesNewerTerm).
	peer, err := OpenDB(s.cfg.PeerDSN)
	if err != nil {
		return nil, fmt.Errorf("resync: peer database: %w", err)
	}
	defer peer.Close()
	if err := markOwed(ctx, peer, s.term.Load(), s.cfg.Site); err != nil {
		return nil, err
	}
	exported, err := s.renewSlotExported(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("resync: %w", err)
	}
	s.logger.Warn("resync: the lost replication slot was made anew", "slot", SlotName(s.cfg.Site), "existed", info.Exists)
	return exported, nil
}

// markOwed records on peer that it is owed a copy of site's database (owedGID), in a
// transaction that checks peer's term record first when term is above 0; that refusal wraps
// ErrStaleTerm.
func markOwed(ctx context.Context, peer *sql.DB, term uint64, site string) error {
	tx, err := peer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("resync: peer database: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // after Commit: sql.ErrTxDone, nothing done
	if term > 0 {
		if _, err := tx.ExecContext(ctx, `SELECT tandem.check_term($1, $2)`, int64(term), site); err != nil {
			if pgErrCode(err) == sqlstateStaleTerm {
				return fmt.Errorf("resync: peer: %w: %w", ErrStaleTerm, err)
			}
			return fmt.Errorf("resync: peer: term check: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO tandem.decisions (gid) VALUES ($1) ON CONFLICT (gid) DO NOTHING`, owedGID(site)); err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("resync: peer database: record that it is owed a copy, before the lost slot is made anew: %w", err)
	}
	return nil
}
