package txshim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/config"
)

// Peer prepares a locally prepared transaction's changes on the peer database and later commits them.
type Peer interface {
	// Prepare waits for gid's decoded changes from the local slot, applies them on the peer and
	// runs PREPARE TRANSACTION gid there (DESIGN §5.3 step 2). A *PeerError tells whether the
	// failure is definite (SQL error: the peer refused) or unknown (connection lost, timeout).
	Prepare(ctx context.Context, gid string) error
	// Commit runs COMMIT PREPARED gid on the peer after the local commit; it may complete after
	// the client's reply (recovery covers a failure). Must not block the caller for long.
	Commit(gid string)
	// Rollback runs ROLLBACK PREPARED gid on the peer if it was prepared there.
	Rollback(gid string)
}

// PeerError is a failure of one step of the peer side of a dual commit.
type PeerError struct {
	GID  string
	Step string // e.g. "apply", "prepare", "commit"
	// Definite is true when the peer answered with an SQL error (it refused the transaction);
	// false when the outcome is unknown (connection lost, timeout).
	Definite bool
	Err      error
}

func (e *PeerError) Error() string {
	kind := "unknown outcome"
	if e.Definite {
		kind = "refused"
	}
	return fmt.Sprintf("peer %s of %s (%s): %v", e.Step, e.GID, kind, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// fail calls the shim's failpoint hook (shimHooks), if a test set one, at step of the dual
// commit.
func (s *session) fail(step string) error {
	failpoint := s.shim.hooks.failpoint.get()
	if failpoint == nil {
		return nil
	}
	if err := failpoint(step); err != nil {
		return fmt.Errorf("failpoint %s: %w", step, err)
	}
	return nil
}

// commitProc ends the transaction open on the backend (status T) by DESIGN §5.3. explicit: the
// client sent COMMIT and gets CommandComplete COMMIT on success; otherwise the shim opened the
// transaction and success adds nothing to the replies. chain: COMMIT AND CHAIN.
//
// ok=false means the transaction did not commit and the client got an ErrorResponse; the backend
// is then idle. An error means the session must end.
//
// Decisions documented here:
//   - A transaction without an xid commits plainly and never touches the peer. One in which the
//     lexer saw no write commits in one round trip (check and COMMIT pipelined) without asking
//     for the xid first; if a function wrote after all, that commit is plain (Stats.Unwrapped)
//     and the decoder ships it from the stream (DESIGN §5.1).
//   - In solo, read-only and fenced modes the whole procedure is one round trip: a check that
//     fails on a write (read-only modes) or a newer database term (solo), pipelined with COMMIT,
//     which the failed check turns into a rollback.
//   - The term check (DESIGN §3) runs when the shim has a term (> 0) in dual and solo mode: the
//     local tandem.state term must not be newer than the shim's. It is a read, not a lock: a
//     successor writing its term concurrently may still see this one commit first.
//   - Transactions that cannot be prepared are recognised before PREPARE, since a failed PREPARE
//     loses the transaction: one that ran LISTEN/UNLISTEN/NOTIFY, pg_notify(),
//     pg_export_snapshot() or DECLARE … WITH HOLD, and every transaction of a session that
//     has a temporary schema — seen in the commit check (tempCheck), so temporary objects a
//     function made, used or dropped count too — commit plainly (counted in Stats.Unwrapped;
//     the decoder ships them from the stream). When PREPARE still fails with 0A000 (a
//     temporary schema made in a subtransaction that rolled back), the client gets that error,
//     and the session's later transactions commit plainly, so a retry succeeds.
//   - After an unknown peer outcome a site that may not commit alone (peer_down = "block", or
//     it lost the master role meanwhile) leaves the transaction prepared for the resolver and
//     tells the client 08007 (transaction resolution unknown): rolling it back could
//     contradict recovery, which commits a copy prepared on the peer when this database is out
//     of reach (DESIGN §5.4).
func (s *session) commitProc(ctx context.Context, pol policy, explicit, chain bool) (bool, error) {
	// A transaction in which the lexer saw no write commits like a read-only one in one round
	// trip; should a function have written after all, that commit is plain (counted as
	// unwrapped; the decoder ships it, DESIGN §5.1).
	readOnly := s.commitReadOnly()
	if readOnly && !pol.readOnly {
		// It may have written all the same (a function the shim does not know writes): its
		// commit counts as in flight at the gate, without waiting there, so that a hold
		// (catch-up) or a handover's Drain waits for it and for its reply's wait for the peer
		// (localFinish). Under a hold it is not let through unasked: it asks whether it wrote
		// first, and one that did passes the gate as any write (waiting for the hold's end).
		if s.shim.gate.track(s) {
			defer s.shim.gate.leaveSlow(s)
		} else {
			wrote, err := s.assignedXid()
			if err != nil {
				return false, err
			}
			readOnly = !wrote
		}
	}
	if !readOnly && s.commitLocal(pol, readOnly) {
		// A local commit of a write (solo mode) is pipelined with its check: it passes the
		// gate (HoldCommits) first. A dual commit passes it in finishCommit.
		if _, err := s.passGate(ctx, false); err != nil {
			return false, err
		}
		// A hold may have ended with a change of mode (catch-up done: solo → dual).
		if cur := *s.shim.mode.Load(); cur != pol.modeState {
			pol = policyFor(cur)
		}
		if s.commitLocal(pol, readOnly) {
			defer s.shim.gate.leave(s)
			if err := s.fail("local-commit-gated"); err != nil {
				return false, err
			}
		} else {
			s.shim.gate.leave(s) // a dual commit passes the gate in finishCommit
		}
	}
	cs, err := s.startCommit(pol, chain, readOnly)
	if err != nil {
		return false, err
	}
	return s.finishCommit(ctx, pol, cs, explicit, chain)
}

// assignedXid tells whether the open transaction has a transaction id (it wrote). When it
// cannot tell (the query failed, and the transaction with it), it says yes: the commit that
// follows fails its check and rolls back.
func (s *session) assignedXid() (bool, error) {
	r, err := s.capture("SELECT pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL")
	if err != nil {
		return false, err
	}
	return r.err != nil || len(r.row) != 1 || string(r.row[0]) != "f", nil
}

// commitStart is the first step of a commit procedure, sent but not yet answered. The shim
// pipelines it behind the last statement of an implicit transaction, saving a round trip.
type commitStart struct {
	local bool // no peer: check and COMMIT pipelined (localFinish)
	chain bool // COMMIT AND CHAIN
	// readOnly: the transaction was believed not to have written when the commit was started.
	// Kept here because the belief ends with the transaction (txFlags): asked again once the
	// COMMIT's reply came, commitReadOnly says true of every transaction.
	readOnly bool
	check    *pending // the check query
	commit   *pending // local only: the COMMIT behind it
}

// commitReadOnly tells whether the open transaction is believed not to have written, so its
// commit does not consult the peer.
func (s *session) commitReadOnly() bool {
	_, wrote := s.txFlags()
	return !wrote
}

// commitLocal tells whether startCommit under pol commits without the peer.
func (s *session) commitLocal(pol policy, readOnly bool) bool {
	return !pol.peer || s.shim.opts.Peer == nil || readOnly
}

// startCommit sends the first step of the commit procedure without waiting (nor flushing: the
// wait for its result does); readOnly: the transaction is believed not to have written, so the
// peer is not consulted.
func (s *session) startCommit(pol policy, chain, readOnly bool) (*commitStart, error) {
	cs := &commitStart{local: s.commitLocal(pol, readOnly), chain: chain, readOnly: readOnly, check: &pending{res: make(chan result, 1)}}
	// The transaction's id, as the check reads it. A WITH HOLD cursor's query runs at COMMIT
	// as far as the client left it unread, after the check: a write it makes there would find
	// the transaction without an id in the check — committed in a read-only mode, answered
	// before the peer has it in dual mode. A transaction that declared one whose query the
	// lexer takes for a write is given an id by the check: its commit is then a write's.
	xid := "pg_catalog.pg_current_xact_id_if_assigned()"
	if s.txHoldWrite() {
		xid = "pg_catalog.pg_current_xact_id()"
	}
	// Every function, operator and type these checks use is qualified: the client controls
	// search_path, and one that puts a schema before pg_catalog could shadow them.
	if !cs.local {
		// The second column (see tempCheck) tells whether the session has a temporary schema,
		// the third whether the client changed its role (roleChanged); the second from last writes
		// a transactional logical message when the transaction has an id. A transaction with an
		// id whose changes decode to nothing — SELECT … FOR UPDATE, writes to UNLOGGED tables
		// only, pg_current_xact_id() — is not decoded at all: the peer's Prepare waited for it
		// until commit_timeout and sent the site on alone. The message makes it one the
		// decoder delivers (an empty transaction, prepared on the peer like any other). The
		// columns are computed in order: the id is read before the message would assign one.
		q := "SELECT " + xid + "::pg_catalog.text, " + tempCheck +
			", CURRENT_USER OPERATOR(pg_catalog.<>) SESSION_USER"
		if pol.term > 0 {
			q += ", (SELECT term FROM tandem.state WHERE id OPERATOR(pg_catalog.=) 1), (SELECT master FROM tandem.state WHERE id OPERATOR(pg_catalog.=) 1)"
		}
		if chain {
			q += ", pg_catalog.current_setting('transaction_isolation'), pg_catalog.current_setting('transaction_read_only'), pg_catalog.current_setting('transaction_deferrable')"
		}
		// Third from last: the database's max_prepared_transactions (Shim.prepared).
		q += ", pg_catalog.current_setting('max_prepared_transactions')"
		q += ", CASE WHEN pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL THEN pg_catalog.pg_logical_emit_message(true, 'tandem', '') END"
		// The last column: the session's idle_session_timeout, as the transaction sees it
		// (idleCheckOn).
		q += ", pg_catalog.current_setting('idle_session_timeout', true)"
		return cs, s.sendKept(q, cs.check, false)
	}
	var q string
	var args []string
	switch {
	case pol.readOnly:
		// The failing casts depend on row values: a constant one would fail at plan time. The
		// rest of the transaction is made read-only, so that what a WITH HOLD cursor's query
		// runs at COMMIT cannot write a table either (a function the shim does not know writes
		// in a transaction begun read-write before the mode changed; large objects PostgreSQL
		// before 16 writes in read-only transactions too: those the lexer sees, xid).
		// Only in a transaction that declared a WITH HOLD cursor (txFlags' unprep): COMMIT AND
		// CHAIN begins the next transaction with this one's characteristics, and a client's READ
		// WRITE transaction chained into a READ ONLY one (TestReadOnlyChainKeepsReadWrite).
		q = "SELECT CASE WHEN x IS NOT NULL THEN ('" + readOnlyMark + " ' OPERATOR(pg_catalog.||) x)::int END FROM " + xid + " x"
		if unprep, _ := s.txFlags(); unprep {
			q = "SELECT CASE WHEN x IS NOT NULL THEN ('" + readOnlyMark + " ' OPERATOR(pg_catalog.||) x)::int END, " +
				"pg_catalog.set_config('transaction_read_only', 'on', true) FROM " + xid + " x"
		}
	case pol.term > 0:
		q = "SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text, (SELECT CASE WHEN term OPERATOR(pg_catalog.>) $1::bigint OR " +
			"(term OPERATOR(pg_catalog.=) $1::bigint AND master OPERATOR(pg_catalog.<>) $2) THEN ('" + staleMark +
			" ' OPERATOR(pg_catalog.||) term OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) master)::int END FROM tandem.state WHERE id OPERATOR(pg_catalog.=) 1)"
		args = []string{strconv.FormatUint(pol.term, 10), s.shim.opts.Site}
	default:
		q = "SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text"
	}
	cq := "COMMIT"
	if chain {
		cq = "COMMIT AND CHAIN"
	}
	cs.commit = &pending{res: make(chan result, 1), notices: true}
	if err := s.sendKept(q, cs.check, false, args...); err != nil {
		return nil, err
	}
	return cs, s.sendOwn(cq, cs.commit, false)
}

// chainColumns is where the dual commit check's row (startCommit) has the transaction's
// characteristics for COMMIT AND CHAIN: after the term record's two columns when pol has a term.
func chainColumns(pol policy) int {
	if pol.term > 0 {
		return 5
	}
	return 3
}

// abandonCommit collects a started commit whose transaction failed before it (its check then
// failed too, and a local COMMIT rolled back) and returns the status after it.
func (s *session) abandonCommit(cs *commitStart) (byte, error) {
	r, err := s.wait(cs.check)
	if err != nil || cs.commit == nil {
		return r.status, err
	}
	r, err = s.wait(cs.commit)
	return r.status, err
}

// finishCommit goes on with a started commit procedure (see commitProc).
func (s *session) finishCommit(ctx context.Context, pol policy, cs *commitStart, explicit, chain bool) (bool, error) {
	defer func() { s.txUnprep, s.txWrote, s.txHold = false, false, false }()
	if cs.local {
		return s.localFinish(ctx, pol, cs, explicit)
	}
	st := &s.shim.stats
	peer := s.shim.opts.Peer
	r, err := s.wait(cs.check)
	if err != nil {
		return false, err
	}
	checkRow := r.row
	// Every way on from here commits a write (or rolls it back): pass the gate first.
	if _, err := s.passGate(ctx, false); err != nil {
		return false, err
	}
	defer s.shim.gate.leave(s)
	if r.err != nil && checkErrorOwn(r.err.Code) {
		if _, err := s.capture("ROLLBACK"); err != nil {
			return false, err
		}
		return false, s.emit(r.err)
	}
	if r.err != nil || len(r.row) < 1 {
		msg := "no row"
		if r.err != nil {
			msg = r.err.Message
		}
		return s.abort("XX000", "tandem: commit check failed: "+msg)
	}
	if r.row[0] == nil {
		st.plain.Add(1)
		// Nothing to wait for: AND CHAIN as sent.
		q := "COMMIT"
		if chain {
			q = "COMMIT AND CHAIN"
		}
		return s.plainCommit(ctx, pol, explicit, q, false, 0)
	}
	// Once through the gate, a write's commit is in flight and a handover waits for it
	// (Shim.Drain); one that comes through after the role was given up is refused.
	if cur := s.shim.mode.Load(); cur.term != pol.term || (cur.mode != ModeDual && cur.mode != ModeSolo) {
		st.refused.Add(1)
		return s.abort("25006", fmt.Sprintf("tandem: this site is no longer master of term %d; transaction rolled back", pol.term))
	}
	if pol.term > 0 {
		var dbTerm uint64
		var dbMaster string
		if len(r.row) > 4 && r.row[3] != nil && r.row[4] != nil {
			dbTerm, _ = strconv.ParseUint(string(r.row[3]), 10, 64)
			dbMaster = string(r.row[4])
		}
		if dbTerm > pol.term || (dbTerm == pol.term && dbMaster != s.shim.opts.Site) {
			st.refused.Add(1)
			s.log.Warn("txshim: commit refused: the database holds a newer term, or this term of another master", "db_term", dbTerm, "db_master", dbMaster, "term", pol.term)
			return s.abort("25006", fmt.Sprintf("tandem: fenced: the database is at term %d of master %s, this master (%s) at term %d; transaction rolled back",
				dbTerm, dbMaster, s.shim.opts.Site, pol.term))
		}
	}
	xid, err := strconv.ParseUint(string(r.row[0]), 10, 64)
	if err != nil {
		return s.abort("XX000", fmt.Sprintf("tandem: unexpected transaction id %q", r.row[0]))
	}
	if len(r.row) < 2 || r.row[1] == nil || string(r.row[1]) != "f" {
		// The session has a temporary schema (or the check did not say): the transaction
		// may have operated on temporary objects the lexer did not see — made, used or dropped
		// by a function, or made by one earlier in the session — and PREPARE would fail.
		if !s.sessionTemp {
			s.log.Info("txshim: the session has temporary objects the shim did not see made; its transactions commit plainly")
		}
		s.sessionTemp = true
	}
	var chainBegin string
	if at := chainColumns(pol); chain && len(r.row) >= at+3 {
		chainBegin = chainBeginSQL(r.row[at : at+3])
	}
	// How a plain commit ends it: with AND CHAIN, committed and then begun again (plainCommit).
	plain := "COMMIT"
	switch {
	case chainBegin != "":
		plain = chainBegin
	case chain:
		plain = "COMMIT AND CHAIN" // (no characteristics read: not waited for, awaitShipped)
	}
	if unprep, _ := s.txFlags(); unprep || s.sessionTemp {
		st.unwrapped.Add(1)
		s.log.Info("txshim: transaction cannot be prepared; committing plainly", "temp_objects", s.sessionTemp)
		return s.plainCommit(ctx, pol, explicit, plain, true, xid)
	}
	if len(r.row) > 2 && string(r.row[2]) == "t" {
		// The client changed its role (SET ROLE): PostgreSQL makes that role the owner of the
		// prepared transaction, and only its owner or a superuser may finish it. The session's
		// own COMMIT PREPARED may run as another role (a SET LOCAL ROLE is gone by then), and
		// the resolver runs as local_dsn's user: unless that user is a superuser, the
		// transaction could stay prepared on both databases for good. It commits plainly
		// then, shipped from the stream before its reply, as one that cannot be prepared.
		rr, err := s.capture("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) SESSION_USER")
		if err != nil {
			return false, err
		}
		if rr.err != nil {
			return s.abort("XX000", "tandem: commit check failed: "+rr.err.Message)
		}
		if len(rr.row) != 1 || string(rr.row[0]) != "t" {
			st.unwrapped.Add(1)
			s.log.Info("txshim: a transaction under a role set with SET ROLE commits plainly: local_dsn's user is not a superuser, and could not finish it prepared")
			return s.plainCommit(ctx, pol, explicit, plain, true, xid)
		}
	}
	gid := gidFor(s.shim.opts.Site, pol.term, xid)
	s.shim.inflight.Store(gid, struct{}{})
	defer s.shim.inflight.Delete(gid)
	// unsettled: the gid may be prepared and this session has not finished it either way — its
	// backend gone, a cancel on its COMMIT PREPARED outlasting the retries, a failed ROLLBACK
	// PREPARED. The resolver is then asked for a pass at once (OnInDoubt), which settles it
	// by the rules of DESIGN §5.4, rather than at its next period with the gid's row locks
	// held meanwhile.
	unsettled := false
	defer func() {
		if unsettled && s.shim.opts.OnInDoubt != nil {
			s.shim.inflight.Delete(gid) // the pass must not skip it as in flight
			s.shim.opts.OnInDoubt()
		}
	}()

	// The local database takes max_prepared_transactions prepared at once: wait for one
	// rather than have PREPARE fail, and the transaction with it (prepSlots).
	if len(checkRow) >= 3 && checkRow[len(checkRow)-3] != nil {
		if n, err := strconv.Atoi(string(checkRow[len(checkRow)-3])); err == nil && n > 0 {
			s.shim.prepared.setMax(n)
		}
	}
	// The commit's one deadline, for its wait for a local prepared transaction and for the
	// peer's prepare together: each with a commit timeout of its own, a commit that waited its
	// turn here then waited as long again for a peer that does not answer, twice the bound the
	// client was promised (TestLocalPreparedSlotsCommitBound).
	deadline := time.Now().Add(s.shim.cfg.CommitTimeout)
	if ok, err := s.takePrepared(ctx, gid, deadline); !ok || err != nil {
		return false, err
	}
	defer s.shim.prepared.release()

	// Step 1: local PREPARE.
	if err := s.fail("before-prepare"); err != nil {
		return false, err
	}
	unsettled = true
	prep := &pending{res: make(chan result, 1), notices: true}
	if err := s.sendOwn("PREPARE TRANSACTION "+quoteLiteral(gid), prep, false); err != nil {
		return false, err
	}
	// The backend waits idle, outside a transaction, while the peer prepares: the client's
	// idle_session_timeout is off meanwhile (idleOff), pipelined behind the PREPARE. Not read in
	// the transaction (the commit check): the value to put back is the one the transaction
	// leaves the session — a SET LOCAL of it ends with it, a SET is undone when PREPARE fails —
	// which only a statement after it can read. Skipped, two statements fewer on each commit,
	// where the check saw it off (idleCheckOn).
	var idle *idleGuard
	if idleCheckOn(checkRow) {
		if idle, err = s.idleOff(); err != nil {
			return false, err
		}
	}
	defer func() {
		if err := s.idleRestore(idle); err != nil {
			s.log.Debug("txshim: idle_session_timeout not put back", "err", err)
		}
	}()
	r, err = s.wait(prep)
	if err != nil {
		return false, err
	}
	if r.err != nil {
		unsettled = false // refused: nothing prepared
		if r.err.Code == "0A000" {
			s.sessionTemp = true
			s.log.Info("txshim: PREPARE not supported for this session's transactions; later ones commit plainly", "gid", gid, "err", r.err.Message)
		}
		return false, s.emit(r.err)
	}
	if err := s.idleSet(idle); err != nil {
		return false, err
	}
	if err := s.fail("after-local-prepare"); err != nil {
		return false, err
	}

	// Step 2: the peer applies and prepares.
	pctx, cancel := context.WithDeadline(ctx, deadline)
	perr := peer.Prepare(pctx, gid)
	cancel()
	if err := s.fail("after-peer-prepare"); err != nil {
		return false, err
	}
	if perr != nil {
		st.peerErrs.Add(1)
		var pe *PeerError
		definite := errors.As(perr, &pe) && pe.Definite
		// Alone only as master of this term, once going solo was announced: a site that lost
		// the role while the peer did not answer, or whose announcement nobody acknowledged,
		// must not commit what a successor may never have.
		alone := !definite && s.shim.cfg.PeerDown != config.PeerDownBlock && s.shim.peerDown(pol.term, perr)
		if !alone && !definite {
			// The peer's outcome is unknown and this site may not commit alone. The peer may hold
			// the transaction prepared, and recovery commits a copy prepared there when this
			// site's database is out of its reach (DESIGN §5.4: the coordinator decided
			// commit): a rollback here could leave it committed there only, a commit here could
			// leave it here only. It stays prepared; the resolver, which sees both databases,
			// finishes it one way on both, and the client hears that the outcome is unknown.
			why := "peer_down = block"
			if s.shim.cfg.PeerDown != config.PeerDownBlock {
				why = "going solo was not acknowledged"
				if cur := s.shim.mode.Load(); cur.term != pol.term || (cur.mode != ModeDual && cur.mode != ModeSolo) {
					why = fmt.Sprintf("this site stopped being master of term %d", pol.term)
				}
			}
			st.leftInDoubt.Add(1)
			s.log.Error("txshim: dual commit in doubt: the peer did not answer and this site may not commit alone; recovery finishes it",
				"gid", gid, "why", why, "err", perr)
			// The session is done with the gid: the deferred call asks for a pass (unsettled).
			return false, s.emitError("08007", fmt.Sprintf("tandem: transaction %s is in doubt: the peer database did not answer and %s; "+
				"recovery commits or rolls it back on both databases: %v", gid, why, perr))
		}
		if !alone {
			r, err := s.finishPrepared("ROLLBACK", gid)
			if err != nil {
				return false, err
			}
			if r.err != nil {
				s.log.Error("txshim: ROLLBACK PREPARED failed; recovery will resolve it", "gid", gid, "err", r.err.Message)
			} else {
				unsettled = false
			}
			peer.Rollback(gid)
			if pgErrCode(perr) == sqlstateStaleTerm {
				// Fenced (DESIGN §3): another site is master of a newer term, not a divergence.
				s.log.Warn("txshim: dual commit refused: the peer database holds a newer term", "gid", gid, "term", pol.term, "err", perr)
				return false, s.emitError("25006", fmt.Sprintf("tandem: fenced: the peer database holds a term newer than this master's term %d, or the same term of another master; transaction %s rolled back", pol.term, gid))
			}
			if transient(perr) {
				// Refused for the moment all the commit's time long (a deadlock, a cancel on
				// the peer): nothing differs, the client may try again.
				code := pgErrCode(perr)
				if !strings.HasPrefix(code, "40") {
					code = "40001"
				}
				s.log.Warn("txshim: dual commit refused by the peer for the moment", "gid", gid, "err", perr)
				return false, s.emitError(code, fmt.Sprintf("tandem: the peer database refused transaction %s for the moment; rolled back, try again: %v", gid, perr))
			}
			// Refused for good (a constraint, a missing table): the databases differ in data,
			// schema or a setting the rows' checks depend on, but the transaction is rolled back
			// on both (the peer never prepared it), so it made them differ in nothing; shipping
			// goes on (TestPeerRefusalSettingsCheck).
			s.log.Error("txshim: dual commit failed", "gid", gid, "definite", definite, "err", perr)
			return false, s.emitError("XX000", fmt.Sprintf("tandem: the peer database refused transaction %s, which this database took "+
				"(the two differ in data, schema or session settings); rolled back on both databases: %v", gid, perr))
		}
	}

	// Step 3: local COMMIT PREPARED, then the peer's.
	r, err = s.finishPrepared("COMMIT", gid)
	if err != nil {
		return false, err
	}
	unsettled = r.err != nil
	if r.err != nil {
		// A resolver that does not know this commit is in flight (the next master's at its
		// promotion, `tandem resolve`) may have finished the gid meanwhile: the xid's status
		// tells which way, and the client hears that outcome, not an error it would retry.
		status, err := s.xactStatus(xid)
		if err != nil {
			return false, err
		}
		unsettled = status != "committed" && status != "aborted"
		switch status {
		case "committed":
			s.log.Warn("txshim: COMMIT PREPARED found the transaction committed already (by a resolver)", "gid", gid)
		case "aborted":
			s.log.Error("txshim: COMMIT PREPARED found the transaction rolled back (by a resolver)", "gid", gid, "err", r.err.Message)
			return false, s.emitError("40000", fmt.Sprintf("tandem: transaction %s was rolled back by recovery before its commit: %s", gid, r.err.Message))
		default:
			s.log.Error("txshim: COMMIT PREPARED failed; recovery will finish it", "gid", gid, "err", r.err.Message, "status", status)
			return false, s.emitError("08007", fmt.Sprintf("tandem: COMMIT PREPARED %s failed (%s); the transaction is in doubt and recovery will finish it", gid, r.err.Message))
		}
	}
	if err := s.fail("after-local-commit"); err != nil {
		return false, err
	}
	if perr == nil {
		peer.Commit(gid)
		st.dual.Add(1)
	} else {
		st.solo.Add(1)
	}
	if explicit {
		if err := s.emit(&pgproto3.CommandComplete{CommandTag: []byte("COMMIT")}); err != nil {
			return false, err
		}
	}
	// Put back outside the transaction a chained commit begins.
	if err := s.idleRestore(idle); err != nil {
		return false, err
	}
	if err := s.beginChained(chainBegin); err != nil {
		return false, err
	}
	return true, nil
}

// takePrepared takes one of the local database's prepared transactions for gid's PREPARE
// (Shim.prepared), waiting while the session's transaction stays open (the client's
// idle_in_transaction_session_timeout off, as at the gate) until the commit's deadline, which
// the peer's prepare shares. ok=false: none came free in time, the transaction was rolled back
// and the client told.
func (s *session) takePrepared(ctx context.Context, gid string, deadline time.Time) (ok bool, err error) {
	if s.shim.prepared.tryTake() {
		return true, nil
	}
	if err := s.swallow("SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
		return false, err
	}
	if err := s.bw.Flush(); err != nil {
		return false, err
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := s.shim.prepared.take(wctx); err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		n := s.shim.prepared.limit()
		s.log.Warn("txshim: commit refused: every prepared transaction the local database allows is held by commits in progress", "gid", gid, "max_prepared_transactions", n)
		return s.abort("53200", fmt.Sprintf("tandem: the local database's prepared transactions (max_prepared_transactions = %d) were all held by other commits for the commit timeout; transaction rolled back, try again", n))
	}
	return true, nil
}

// passGate passes the commit gate for a write's commit (commitGate.enter) or, slow, for what
// may commit outside the commit procedure (enterProc). Where a hold (catch-up's tail) makes it
// wait, the client's backend waits idle meanwhile — in the transaction being committed, or
// outside a transaction block before a procedure — and a timeout the client set,
// idle_in_transaction_session_timeout or idle_session_timeout, would end the session in the
// middle of what PostgreSQL runs at once: it is turned off first, for the transaction (SET
// LOCAL, gone with it), or until the guard returned is put back (idleRestore) once the gate
// let the caller through.
func (s *session) passGate(ctx context.Context, slow bool) (*idleGuard, error) {
	try, enter := s.shim.gate.tryEnter, s.shim.gate.enter
	if slow {
		try, enter = s.shim.gate.tryEnterProc, s.shim.gate.enterProc
	}
	if try(s) {
		return nil, nil
	}
	var g *idleGuard
	switch st, err := s.barrier(); {
	case errors.Is(err, errCopyOpen):
	case err != nil:
		return nil, err
	case s.unit.open && s.unit.st == 0:
		// Within an extended request whose part before a Flush was sent unanswered: the
		// backend has sent no ReadyForQuery since, so neither timeout runs, and a statement of
		// the shim's own, with its Sync, would end that request on the backend — after an
		// error there, the part behind the gate would run where PostgreSQL skips it
		// (TestHeldProcAfterFailedFlushPart).
	case st == 'I':
		if g, err = s.idleOff(); err != nil {
			return nil, err
		}
		if err := s.idleSet(g); err != nil {
			return nil, err
		}
	case st == 'T':
		if err := s.swallow("SET LOCAL idle_in_transaction_session_timeout = 0"); err != nil {
			return nil, err
		}
		if err := s.bw.Flush(); err != nil {
			return nil, err
		}
	}
	return g, enter(ctx, s)
}

// idleShowSQL reads the session's idle_session_timeout for idleOff, and idleOffSQL turns it
// off. Neither takes a snapshot, as a query would: they run outside a transaction block, in
// implicit transactions of the session's default characteristics, and a query under
// SERIALIZABLE, READ ONLY and DEFERRABLE defaults waits for a safe snapshot — for every
// serializable read-write transaction open to end, the session's own prepared one among them,
// which only the COMMIT PREPARED behind it ends: the commit hung for good
// (TestDeferrableDefaultsCommit).
const (
	idleShowSQL = "SHOW idle_session_timeout"
	idleOffSQL  = "SET idle_session_timeout = 0"
	// The same for idle_in_transaction_session_timeout (awaitShippedInBlock), in the client's
	// block: SET LOCAL, which the block's end undoes, leaving what the client set (SET, SET
	// LOCAL, or neither) as PostgreSQL would.
	idleTxShowSQL = "SHOW idle_in_transaction_session_timeout"
	idleTxOffSQL  = "SET LOCAL idle_in_transaction_session_timeout = 0"
)

// idleCheckOn tells whether the dual commit check's row (startCommit), whose last column is the
// session's idle_session_timeout as its transaction saw it, leaves the setting to guard: not
// when it was off (or is unknown to the server). Where the session's own value is on, the
// transaction sees it on unless it did SET LOCAL idle_session_timeout = 0 — a setting that
// does nothing inside a transaction, which then goes unguarded.
func idleCheckOn(row [][]byte) bool {
	if len(row) == 0 {
		return true
	}
	v := row[len(row)-1]
	return v != nil && string(v) != "0"
}

// idleGuard is idleOff's reading of the setting, sent, and the value it read (old, nil when
// it was off) once idleSet had the reply; done once idleRestore ran.
type idleGuard struct {
	p    *pending
	old  []byte
	done bool
	// inBlock: no guard, the session waits in a transaction block (awaitShippedInBlock).
	inBlock bool
}

// idleOff turns the client's idle_session_timeout off while the backend waits idle outside a
// transaction for the peer within the commit procedure (after PREPARE TRANSACTION, or after a
// plain commit for it to be shipped): PostgreSQL would end the session there, in the middle of
// a commit that, without the shim, the client's COMMIT would have had answered at once. It
// pipelines the reading of the setting and the SET that turns it off behind what was sent
// before (outside a transaction): the backend reads the SET at once after the ReadyForQuery
// before it, as PostgreSQL reads the next statement of a request. (Sent only once the reading's
// reply came, the SET left the client's timeout running for that round trip: a short one ended
// the session there, the transaction left prepared, TestIdleSessionTimeoutShortDualCommit.)
// idleSet reads the value, which idleRestore puts back.
func (s *session) idleOff() (*idleGuard, error) {
	g := &idleGuard{p: &pending{res: make(chan result, 1)}}
	// Kept prepared on the backend (sendKept): they run on every dual commit.
	if err := s.sendKept(idleShowSQL, g.p, false); err != nil {
		return g, err
	}
	return g, s.sendKept(idleOffSQL, &pending{}, false)
}

// idleSet reads idleOff's reply: the value idleRestore puts back, kept in g.old when it was not
// off.
func (s *session) idleSet(g *idleGuard) error {
	if g == nil || g.p == nil {
		return nil
	}
	r, err := s.wait(g.p)
	g.p = nil
	if err != nil || r.err != nil || len(r.row) != 1 || r.row[0] == nil || string(r.row[0]) == "0" {
		return err
	}
	g.old = r.row[0]
	return nil
}

// idleRestore puts back the value idleOff turned off, sent without waiting; it is to be called
// outside a transaction, and does nothing the second time.
func (s *session) idleRestore(g *idleGuard) error {
	if g == nil || g.done {
		return nil
	}
	g.done = true
	if err := s.idleSet(g); err != nil {
		return err
	}
	if g.old == nil {
		return nil
	}
	// A SET, not set_config: no snapshot (see idleShowSQL).
	return s.sendOwn("SET idle_session_timeout = "+quoteLiteral(string(g.old)), &pending{}, false)
}

// viaStepHook is q, or what the shim's ownStep hook (shimHooks), if a test set one, makes of it.
func (s *session) viaStepHook(q string) string {
	if ownStep := s.shim.hooks.ownStep.get(); ownStep != nil {
		return ownStep(q)
	}
	return q
}

// ownRetries is how often the shim sends again a step of its own commit that a cancel ended
// (SQLSTATE 57014): the client's CancelRequest, or a statement_timeout it set, reaches
// whatever its backend runs, the shim's COMMIT PREPARED included, which must not be left
// undone for a resolver's next pass (its row locks held meanwhile) when the decision is known.
const ownRetries = 3

// captureRetried is capture, sent again (up to ownRetries times) while a cancel ends it. Only
// for statements that may run again: finishing a prepared transaction, marking the stream.
func (s *session) captureRetried(q string, args ...string) (result, error) {
	for i := 0; ; i++ {
		r, err := s.capture(s.viaStepHook(q), args...)
		if err != nil || r.err == nil || r.err.Code != "57014" || i == ownRetries {
			return r, err
		}
		s.log.Info("txshim: a step of the commit was cancelled; sending it again", "stmt", q, "err", r.err.Message)
	}
}

// finishPrepared runs COMMIT PREPARED or ROLLBACK PREPARED (verb) of gid on the session's
// backend (captureRetried). PREPARE TRANSACTION made the role in force then the prepared
// transaction's owner, and only its owner or a superuser may finish it; a SET LOCAL ROLE of the
// client's (NONE too) ended with the PREPARE, and the role the session has set since may be
// neither. Refused so (42501), it runs again as the session's user (SET ROLE NONE: the commit
// check found that a superuser when the transaction had a role of its own), the client's role
// put back after — by its name now, read from its id (CURRENT_USER; not SHOW role, the name the
// client's SET ROLE used, which another session may have renamed since: the SET ROLE back
// failed, and the session went on as its superuser login, TestRoleRestoreAfterPrepareRenamed).
// A role that cannot be named (dropped meanwhile) is not left: the refusal stands. Should the
// role not be put back all the same, the session ends rather than go on as another role.
func (s *session) finishPrepared(verb, gid string) (result, error) {
	q := verb + " PREPARED " + quoteLiteral(gid)
	r, err := s.captureRetried(q)
	if err != nil || r.err == nil || r.err.Code != "42501" {
		return r, err
	}
	// In a READ COMMITTED block of its own (captureAlone): the session's transaction is still
	// prepared, and a query under SERIALIZABLE, READ ONLY and DEFERRABLE defaults would wait for it.
	role, err := s.captureAlone("SELECT CASE WHEN pg_catalog.current_setting('role') OPERATOR(pg_catalog.<>) 'none' THEN CURRENT_USER::pg_catalog.text END")
	if err != nil || role.err != nil || len(role.row) != 1 || role.row[0] == nil {
		return r, err
	}
	if err := s.swallow("SET ROLE NONE"); err != nil {
		return r, err
	}
	r, err = s.captureRetried(q)
	if err != nil {
		return r, err
	}
	// Waited for: its ParameterStatus (is_superuser) comes before the reply to the commit.
	back, err := s.capture("SET ROLE " + sqlIdent(string(role.row[0])))
	if err == nil && back.err != nil {
		err = fmt.Errorf("cannot put the session's role %q back after %s PREPARED: %s", role.row[0], verb, back.err.Message)
	}
	return r, err
}

// xactStatus is pg_xact_status of xid on the local database, asked on the session's connection
// outside a transaction block: "committed", "aborted", "in progress", or "" when it cannot tell.
// An error means the session must end.
func (s *session) xactStatus(xid uint64) (string, error) {
	r, err := s.captureAlone("SELECT pg_catalog.pg_xact_status($1::pg_catalog.xid8)", strconv.FormatUint(xid, 10))
	if err != nil || r.err != nil || len(r.row) != 1 || r.row[0] == nil {
		return "", err
	}
	return string(r.row[0]), nil
}

// tempCheck, a column of the check before a dual commit, is true when the session has a
// temporary schema. PostgreSQL refuses to PREPARE a transaction that operated on temporary
// objects (its XACT_FLAGS_ACCESSEDTEMPNAMESPACE flag, which no SQL function shows), and a failed
// PREPARE loses the transaction; every temporary object of a session is in its temporary
// schema, which PostgreSQL makes when the session first needs it and keeps until the session
// ends, so a session without one has not operated on temporary objects. Once it has one, every
// transaction of the session commits plainly (sessionTemp), even one that did not touch them:
// whether objects are left in the schema does not tell (a function may make and drop a table in
// the transaction). One case escapes: a schema made in a subtransaction that rolled back is
// forgotten, the flag not; PREPARE then fails with 0A000 as before.
const tempCheck = "pg_catalog.pg_my_temp_schema() OPERATOR(pg_catalog.<>) 0::pg_catalog.oid"

// staleMark and readOnlyMark make the check before a local commit fail (as invalid integers),
// so that the COMMIT pipelined behind it rolls back.
const (
	staleMark    = "tandem stale term"
	readOnlyMark = "tandem read-only"
)

// localFinish ends a transaction without the peer (solo, read-only and fenced modes) in one
// round trip: a check and the COMMIT were pipelined by startCommit, and the check fails —
// turning the COMMIT into a rollback — when the transaction wrote in a read-only mode or the
// database's term is newer than the shim's (DESIGN §3 fencing).
func (s *session) localFinish(ctx context.Context, pol policy, cs *commitStart, explicit bool) (bool, error) {
	st := &s.shim.stats
	r1, err := s.wait(cs.check)
	if err != nil {
		return false, err
	}
	r2, err := s.wait(cs.commit)
	if err != nil {
		return false, err
	}
	if r1.err != nil {
		if r2.status == 'T' {
			// A COMMIT AND CHAIN behind the failed check met an aborted transaction: it
			// rolled back and began the next one. PostgreSQL's own COMMIT AND CHAIN that
			// fails begins none, and the client is told the session is idle: the statements
			// it sends next as autocommit ones would run in that transaction, never committed.
			if _, err := s.capture("ROLLBACK"); err != nil {
				return false, err
			}
		}
		msg := r1.err.Message
		switch {
		case strings.Contains(msg, readOnlyMark):
			st.refused.Add(1)
			return false, s.emitError("25006", fmt.Sprintf("tandem: this site is %s: write transaction rolled back", pol.mode))
		case strings.Contains(msg, staleMark):
			st.refused.Add(1)
			s.log.Warn("txshim: commit refused: the database holds a newer term, or this term of another master", "term", pol.term)
			return false, s.emitError("25006", fmt.Sprintf("tandem: fenced: the database holds a term newer than this master's term %d, or the same term of another master; transaction rolled back", pol.term))
		}
		if checkErrorOwn(r1.err.Code) {
			// Its COMMIT, pipelined behind, rolled back.
			return false, s.emit(r1.err)
		}
		return false, s.emitError("XX000", "tandem: commit check failed; transaction rolled back: "+msg)
	}
	if r2.err != nil {
		return false, s.emit(r2.err)
	}
	switch {
	case len(r1.row) == 0 || r1.row[0] == nil || pol.readOnly:
		st.plain.Add(1)
	case pol.peer && s.shim.opts.Peer != nil:
		st.unwrapped.Add(1)
		s.log.Info("txshim: a transaction the lexer took for read-only wrote; committed plainly")
		if xid, err := strconv.ParseUint(string(r1.row[0]), 10, 64); err == nil && !cs.chain {
			if told, err := s.awaitShipped(ctx, pol, xid); told || err != nil {
				return false, err
			}
		}
	default:
		st.solo.Add(1)
		// cs.readOnly, not commitReadOnly(): the COMMIT's reply ended the transaction, and with
		// it the write mark.
		if cs.readOnly && !cs.chain && s.shim.opts.Peer != nil {
			// A write the lexer took for a read: counted at the gate (commitProc), a catch-up's
			// hold waits for it, so the tail it ships has it. Should the shim be dual by now
			// all the same, its reply waits for the peer, as in dual mode (DESIGN §5.5: synced
			// only once the peer holds every commit a client saw). Not at the gate again: a
			// hold asked for meanwhile waits for this commit.
			if cur := *s.shim.mode.Load(); cur.mode == ModeDual && cur.term == pol.term {
				if xid, err := strconv.ParseUint(string(r1.row[0]), 10, 64); err == nil {
					if told, err := s.awaitShipped(ctx, policyFor(cur), xid); told || err != nil {
						return false, err
					}
				}
			}
		}
	}
	if explicit {
		return true, s.emit(&pgproto3.CommandComplete{CommandTag: []byte(r2.tag)})
	}
	return true, nil
}

// shipWaiter is a Peer that tells when a transaction committed plainly is on the peer (the
// Shipper).
type shipWaiter interface {
	WaitShipped(ctx context.Context, xid uint32, mark pglogrepl.LSN) error
}

// awaitShipped holds the reply to a write transaction committed plainly in dual mode (xid:
// its transaction id) until the decoder has shipped it to the peer, so that what a client saw
// committed is on both databases as after a dual commit: a failover right after the reply
// cannot lose it. A transactional logical message written after the commit marks a stream
// position the decoder must reach (a transaction that changed nothing shipped leaves no other
// trace in the stream). Should the peer not take it within commit_timeout, the site goes on
// alone as for a dual commit whose peer failed; if it may not (peer_down = "block", or going
// solo was not acknowledged), the client is told SQLSTATE 08007 — the transaction is committed
// here, and the slot keeps it for the peer — and told is true. (A COMMIT AND CHAIN is sent as
// COMMIT and a BEGIN after the wait: plainCommit.) xid 0: every plain commit so far (after CALL).
func (s *session) awaitShipped(ctx context.Context, pol policy, xid uint64) (told bool, err error) {
	return s.awaitShippedGuarded(ctx, pol, xid, nil)
}

// awaitShippedInBlock is awaitShipped (xid 0) for a session inside a transaction block, maybe
// failed (st 'T' or 'E'): what a procedure committed before a BEGIN of the same request, which
// made the implicit transaction the procedure went on in the client's block. The mark is
// written on a connection of its own (Shim.markApart), as neither the client's block nor a
// failed one can hold it. No idle_session_timeout applies in a block, but the client's
// idle_in_transaction_session_timeout does: in a block that did not fail it is off for the
// wait, as idleOff does outside one, and put back after (SET LOCALs in the block: a session
// SET there would outlive the block with the value of a SET LOCAL of the client's).
func (s *session) awaitShippedInBlock(ctx context.Context, pol policy, st byte) (told bool, err error) {
	if st == 'T' {
		p := &pending{res: make(chan result, 1)}
		if err := s.sendOwn(idleTxShowSQL, p, false); err != nil {
			return false, err
		}
		if err := s.sendOwn(idleTxOffSQL, &pending{}, false); err != nil {
			return false, err
		}
		r, err := s.wait(p)
		if err != nil {
			return false, err
		}
		if r.err == nil && len(r.row) == 1 && r.row[0] != nil && string(r.row[0]) != "0" {
			defer func() {
				if rerr := s.sendOwn("SET LOCAL idle_in_transaction_session_timeout = "+quoteLiteral(string(r.row[0])), &pending{}, false); rerr != nil && err == nil {
					err = rerr
				}
			}()
		}
	}
	return s.awaitShippedGuarded(ctx, pol, 0, &idleGuard{done: true, inBlock: true})
}

// awaitShippedGuarded is awaitShipped with idle, the idle_session_timeout guard (idleOff) sent
// already, pipelined behind the commit — or nil, sent here.
func (s *session) awaitShippedGuarded(ctx context.Context, pol policy, xid uint64, idle *idleGuard) (told bool, err error) {
	w, ok := s.shim.opts.Peer.(shipWaiter)
	if !ok {
		return false, s.idleRestore(idle)
	}
	start := time.Now()
	if idle == nil {
		if idle, err = s.idleOff(); err != nil {
			return false, err
		}
	}
	defer func() {
		if rerr := s.idleRestore(idle); rerr != nil && err == nil {
			err = rerr
		}
	}()
	var mark pglogrepl.LSN
	var werr error
	if idle != nil && idle.inBlock {
		mctx, cancel := context.WithTimeout(ctx, s.shim.cfg.CommitTimeout)
		mark, werr = s.shim.markApart(mctx)
		cancel()
	} else {
		r, err := s.markStream()
		if err != nil {
			return false, err
		}
		if err := s.idleSet(idle); err != nil {
			return false, err
		}
		var perr error
		if r.err == nil && len(r.row) == 1 && r.row[0] != nil {
			mark, perr = pglogrepl.ParseLSN(string(r.row[0]))
		}
		if r.err != nil || mark == 0 || perr != nil {
			msg := "no position"
			if r.err != nil {
				msg = r.err.Message
			}
			werr = fmt.Errorf("cannot mark the stream after the commit: %s", msg)
		}
	}
	// Without a mark nothing tells when the peer has it: taken as a wait in vain (the site goes
	// on alone, or the client hears 08007), never as shipped — the reply must not say
	// committed for what a failover right after could lose.
	if werr == nil {
		wctx, cancel := context.WithTimeout(ctx, s.shim.cfg.CommitTimeout)
		werr = w.WaitShipped(wctx, uint32(xid), mark)
		cancel()
	}
	if werr == nil {
		s.log.Debug("txshim: plain commit shipped", "xid", xid, "waited", time.Since(start))
		return false, nil
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	s.shim.stats.peerErrs.Add(1)
	what := fmt.Sprintf("transaction %d is", xid)
	if xid == 0 {
		what = "what the procedure committed is"
	}
	if refusedTerm(werr, pol.term) {
		// The peer refused a plain commit of this term (DESIGN §3): its record holds a newer
		// term, or this one of another master. Not a peer that does not answer: going solo
		// here committed everything after alone on this site's database, in a term the peer's
		// record gives another master (TestPeerTermRefusalPlainThroughShim). The commit is
		// made here; the peer lacks it (peerLacks records so), and the shim's mode stays as it
		// is: its dual commits of the term are refused (Shipper.Prepare).
		s.shim.peerLacks(pol.term)
		s.log.Error("txshim: a plain commit was refused by the peer database for this site's term (a newer term there, or this one of another master); not going solo", "xid", xid, "term", pol.term, "err", werr)
		return true, s.emitError("08007", fmt.Sprintf("tandem: fenced: %s committed on this site's database, but the peer database holds a term newer than this master's term %d, or the same term of another master, and refused it: %v",
			what, pol.term, werr))
	}
	if s.shim.cfg.PeerDown != config.PeerDownBlock && s.shim.peerDown(pol.term, werr) {
		s.log.Warn("txshim: a plain commit did not reach the peer; going on alone (the slot keeps it)", "xid", xid, "err", werr)
		return false, nil
	}
	if cur := s.shim.mode.peek(); s.shim.cfg.PeerDown == config.PeerDownBlock || cur.term != pol.term || cur.mode != ModeDual {
		// Committed here all the same: the peer lacks it until catch-up (DESIGN §3 rule 2) —
		// with block, and when this site stopped being master of pol.term while the commit
		// waited (a handover: peerDown refused, and "released" must not go out saying the
		// peer has everything). Not when peerDown refused in dual mode: it announced already.
		s.shim.peerLacks(pol.term)
	}
	s.shim.stats.leftInDoubt.Add(1)
	s.log.Error("txshim: a plain commit did not reach the peer and this site may not commit alone", "xid", xid, "err", werr)
	return true, s.emitError("08007", fmt.Sprintf("tandem: %s committed on this site's database, but the peer database did not take it and this site may not go on alone; "+
		"it is shipped once the peer is back: %v", what, werr))
}

// markStream writes awaitShipped's mark, a transactional logical message, and returns its
// position (captureAlone); sent again (as captureRetried) while a cancel ends it.
func (s *session) markStream() (result, error) {
	for i := 0; ; i++ {
		q := s.viaStepHook(markSQL)
		r, err := s.captureAlone(q)
		if err != nil || r.err == nil || r.err.Code != "57014" || i == ownRetries {
			return r, err
		}
		s.log.Info("txshim: a step of the commit was cancelled; sending it again", "stmt", q, "err", r.err.Message)
	}
}

// markSQL writes a mark in the stream, a transactional logical message, and reads its
// position. Its commit is written out at once (synchronous_commit = local), and with it every
// commit before it: the decoder reads only WAL on disk, and under a database default of off
// the mark, and the plain commit before it that awaitShipped waits for, reached it only when
// the WAL writer wrote them out, up to wal_writer_delay later — 10 s at its most, past the
// commit's time (TestLocalAsyncCommitPlainMark). currentWAL does the same for catch-up.
const markSQL = "SELECT pg_catalog.pg_logical_emit_message(true, 'tandem', '')::pg_catalog.text FROM pg_catalog.set_config('synchronous_commit', 'local', true)"

// captureAlone is capture for a query of the shim's own outside a transaction block, run in a
// READ COMMITTED block of its own (pipelined: BEGIN, the query, COMMIT). Not in the implicit
// transaction a statement outside a block runs in: that has the session's default
// characteristics, and a query under SERIALIZABLE, READ ONLY and DEFERRABLE defaults waits for
// a safe snapshot — as long as any serializable read-write transaction is open, another
// session's, or the session's own left prepared (TestDeferrableDefaultsPlainCommit,
// TestDeferrableDefaultsCommitPreparedFails). An error of the COMMIT is the result's when the
// query had none.
func (s *session) captureAlone(q string, args ...string) (result, error) {
	if err := s.swallow("BEGIN ISOLATION LEVEL READ COMMITTED"); err != nil {
		return result{}, err
	}
	p, c := &pending{res: make(chan result, 1)}, &pending{res: make(chan result, 1)}
	if err := s.sendOwn(q, p, false, args...); err != nil {
		return result{}, err
	}
	if err := s.sendOwn("COMMIT", c, false); err != nil {
		return result{}, err
	}
	r, err := s.wait(p)
	if err != nil {
		return r, err
	}
	cr, err := s.wait(c)
	if err != nil {
		return r, err
	}
	if r.err == nil && cr.err != nil {
		r.err = cr.err
	}
	return r, nil
}

// beginChained begins the transaction a COMMIT AND CHAIN the shim sent as COMMIT goes on
// with (chainBegin: chainBeginSQL's; "" none), after the commit's reply.
func (s *session) beginChained(chainBegin string) error {
	if chainBegin == "" {
		return nil
	}
	if err := s.swallow(chainBegin); err != nil {
		return err
	}
	return s.bw.Flush()
}

// chainBeginSQL starts a transaction with the characteristics of the one COMMIT AND CHAIN ended:
// isolation, read-only and deferrable settings as current_setting reported them.
func chainBeginSQL(v [][]byte) string {
	iso := strings.ToUpper(string(v[0]))
	switch iso {
	case "READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE":
	default:
		iso = "READ COMMITTED"
	}
	rw := "READ WRITE"
	if string(v[1]) == "on" {
		rw = "READ ONLY"
	}
	def := "NOT DEFERRABLE"
	if string(v[2]) == "on" {
		def = "DEFERRABLE"
	}
	return "BEGIN ISOLATION LEVEL " + iso + ", " + rw + ", " + def
}

// plainCommit commits the open transaction locally with commit, a COMMIT (AND CHAIN) — or,
// when it is a BEGIN (chainBeginSQL), with COMMIT and then that BEGIN, once the reply may go.
// await: it is a write in dual mode, transaction xid, whose reply waits until the peer has it
// (awaitShipped). A COMMIT AND CHAIN would begin the next transaction at once, and the mark
// awaitShipped writes would land in that one, decoded only at its end: a chained write is
// committed with COMMIT, waited for, and its successor begun after (with 08007 it is not: the
// client hears the commit failed, as after a failed dual commit).
func (s *session) plainCommit(ctx context.Context, pol policy, explicit bool, commit string, await bool, xid uint64) (bool, error) {
	var chainBegin string
	if strings.HasPrefix(commit, "BEGIN") {
		chainBegin, commit = commit, "COMMIT"
	}
	await = await && commit != "COMMIT AND CHAIN"
	p := &pending{res: make(chan result, 1), notices: true}
	if err := s.sendOwn(commit, p, false); err != nil {
		return false, err
	}
	// The guard goes right behind the COMMIT (see idleOff): sent once its reply came, it left
	// the client's timeout running, outside a transaction, for that round trip, and a short one
	// ended the session there — the transaction committed, the client told the connection was
	// lost (TestIdleSessionTimeoutShortPlainCommit).
	var idle *idleGuard
	if _, ok := s.shim.opts.Peer.(shipWaiter); ok && await {
		var err error
		if idle, err = s.idleOff(); err != nil {
			return false, err
		}
	}
	r, err := s.wait(p)
	if err != nil {
		return false, err
	}
	if r.err != nil {
		if err := s.idleRestore(idle); err != nil {
			return false, err
		}
		return false, s.emit(r.err)
	}
	if await {
		if told, err := s.awaitShippedGuarded(ctx, pol, xid, idle); told || err != nil {
			return false, err
		}
	}
	if explicit {
		if err := s.emit(&pgproto3.CommandComplete{CommandTag: []byte(r.tag)}); err != nil {
			return false, err
		}
	}
	if err := s.beginChained(chainBegin); err != nil {
		return false, err
	}
	return true, nil
}

// abort rolls the open transaction back and tells the client why.
func (s *session) abort(code, msg string) (bool, error) {
	if _, err := s.capture("ROLLBACK"); err != nil {
		return false, err
	}
	return false, s.emitError(code, msg)
}

// checkErrorOwn tells whether an error of the check before a commit (startCommit) is the
// transaction's own, to reach the client as PostgreSQL sent it rather than as a failure of
// the shim's check (XX000): a SERIALIZABLE transaction doomed by a concurrent commit fails
// its next statement — the check — with 40001, which PostgreSQL reports at COMMIT and retry
// loops key on; so are the other transaction rollbacks (class 40), a cancel or statement
// timeout (57014) and the other operator interventions (57), lock timeouts and busy objects
// (55), and a lack of resources (53).
func checkErrorOwn(code string) bool {
	switch {
	case len(code) != 5:
		return false
	case strings.HasPrefix(code, "40"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "55"), strings.HasPrefix(code, "57"):
		return true
	}
	return false
}
