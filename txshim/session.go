package txshim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A session relays one client connection to its own backend connection on the local database
// (DESIGN §5.1). Two goroutines share the work:
//
//   - clientLoop reads the client and owns every write to the backend. It passes most frames
//     through unchanged; at the end of a transaction it runs the commit procedure itself,
//     sending the shim's own statements to the backend.
//   - serverLoop reads the backend and owns the client's reader side of the relay: for each
//     ReadyForQuery it expects there is a pending entry, queued by clientLoop before the request
//     was written, that says whether the replies go to the client, are swallowed (injected
//     BEGIN), or are captured for the commit procedure.
//
// Writes to the client come from serverLoop and, for replies the shim makes up (CommandComplete
// COMMIT after a dual commit, errors, ReadyForQuery after a split request), from clientLoop when
// nothing is in flight; a mutex keeps whole messages together.
type session struct {
	shim      *Shim
	log       *slog.Logger
	user      string
	cancelKey string // names the session in a cancel request (forwardCancel)

	client net.Conn
	cr     *frameReader
	cmu    sync.Mutex
	cw     *bufio.Writer
	// notes: NotificationResponse frames held for the client's next ReadyForQuery (under cmu;
	// see serverLoop).
	notes []byte
	// notesFile: the notifications held past maxHeldNotes, after those in notes (under cmu):
	// a listening session's transaction may end with PostgreSQL's whole backlog for it (its
	// queue holds up to 8 GB), sent before the ReadyForQuery of a COMMIT the shim runs, and a
	// client that does not read would keep it in the sidecar's memory. An unlinked file, as
	// spill.go's; notesW buffers its writes.
	notesFile *os.File
	notesW    *bufio.Writer
	// tagHeld: while the shim commits a Query's implicit transaction, the replies held back
	// (pending.holdTag), with every ParameterStatus relayed since (under cmu): those the commit
	// brings (a SET LOCAL reverted) must follow the ones the Query's statements brought.
	tagHeld []heldMsg
	// params: the ParameterStatus messages for the client since its last ReadyForQuery, and
	// told, the values it was told last (both under cmu; writeParamsLocked). PostgreSQL reports
	// a parameter just before ReadyForQuery, and only when its value differs from the last
	// report: a Query the shim runs in parts (a COMMIT it runs, a split) gets reports from each
	// part's end — a SET LOCAL's value, then the one its end puts back — where PostgreSQL,
	// running it whole, reports neither.
	params []heldMsg
	told   map[string]string

	backend net.Conn
	br      *frameReader
	bw      *bufio.Writer // clientLoop only

	mu     sync.Mutex
	queue  []*pending
	status byte // ReadyForQuery status after the last reply the backend finished
	// statusSeq: the seq of the entry whose ReadyForQuery status is status.
	statusSeq uint64
	// idleSeq: the seq of the last entry answered with ReadyForQuery status idle.
	idleSeq uint64
	// clientIdle: clientLoop waits for the client's next request, every reply it owed written.
	// Notifications held (notes) for a ReadyForQuery the client will not get before that
	// request — a statement of the shim's own was answered after the client's reply
	// (idleRestore) — go to it once nothing is in flight (releaseNotes).
	clientIdle bool
	// A COPY FROM STDIN that a passed-through request started (the client gets CopyInResponse
	// and sends the data itself) is open while copyStarts > copyEnds: the backend then takes
	// nothing but copy messages. copyStarts counts CopyInResponses relayed, copyEnds the
	// CopyDone/CopyFail the client sent while a request was in flight; both go back to 0 when
	// nothing is (see inCopy). copyOpen is closed when one opens.
	copyStarts, copyEnds int
	copyOpen             chan struct{}
	// relay: the COPY FROM STDIN whose data relayCopyIn relays, while it does.
	relay *copyRelay
	// copyPart: a part of the open extended request, sent unanswered before its Sync (after a
	// Flush), holds a COPY FROM STDIN; the client's CopyDone/CopyFail count while it is set, and
	// the counts stay until the request's Sync.
	copyPart bool
	// copyPartStatus: the status the ReadyForQuery messages that answer the client's Syncs
	// during copyPart's COPY carry instead of the backend's, 0 to keep it: 'I' for a part in
	// the shim's block, which the backend reports failed once a bad row ended the COPY where
	// PostgreSQL, the COPY in its implicit transaction, reports none
	// (TestWrappedExtCopyFlushBadRow).
	copyPartStatus byte
	// copyPartDone: serverLoop read a ReadyForQuery no entry awaits while copyPart was set: a
	// Sync the client sent during the COPY, which a bad row had ended; PostgreSQL ended the
	// request there (endCopyPart).
	copyPartDone bool
	// copyPartErr: serverLoop read an error no entry awaits while copyPart was set: the part
	// failed, its COPY open no more or never opened; copyPartWake, if set, is closed then
	// (awaitCopyOpen).
	copyPartErr  bool
	copyPartWake chan struct{}
	// copyPartImplicit: copyPart's COPY runs in the request's implicit transaction, in no
	// block of the shim's or the client's (a procedure before it in the part: wrapFrom). A Sync
	// of the shim's would commit it partway through the client's request: endCopyPart sends no
	// probe then, and what the client sends goes on as it is
	// (TestCopyPartImplicitSyncThenDone). Read only while copyPart is set.
	copyPartImplicit bool
	// partWrite: a part of the open extended request, sent unanswered before its Sync (after a
	// Flush) while the mode took writes (roForced not set), ran an Execute in the implicit
	// transaction open now (unitState.pipelined), which commits at the Sync without passing the
	// commit gate, or a procedure (notePartWrite): what it wrote (a function the shim does not
	// know writes, a procedure's commits) is in flight until the Sync's reply, and a handover's
	// Drain waits for it (mayWriteInFlight).
	// The request's entries pushed up to its Sync count as sent while the mode took writes.
	// partUnsure: the part was sent behind an entry of this seq still unanswered, the status it
	// runs in not known: partWrite holds unless that entry's reply leaves a transaction block
	// (partWriteLocked).
	partWrite  bool
	partUnsure uint64
	// procGate: a procedure of the open extended request that may run outside a transaction
	// block — in a part sent before its Sync (after a Flush), or sent ahead by walk — passed
	// the commit gate (enterSlow, walk) while the mode was this one. It commits by itself, and
	// the implicit transaction it leaves open commits at the Sync: the session stays counted
	// in the gate until the request's reply (runBatch) or the session's end (run), as one in a
	// request's last part is for its run — a hold stops it, a handover's Drain waits for it —
	// and the reply waits until the peer has what it committed (unitState.procLeft), in that
	// mode.
	procGate *modeState
	// roValue is the session's default_transaction_read_only as the database last reported it
	// (ParameterStatus, reported by PostgreSQL ≥ 14); roChanged, that a report came during a
	// request of the client's since the shim last set it: the client changed it (SET, RESET,
	// DISCARD ALL).
	roValue   string
	roChanged bool
	// clientEnc is the session's client_encoding as the database last reported it: the
	// positions of errors in a part of a simple Query count its characters (queryUnit.send).
	clientEnc string
	// superuser: the session's is_superuser as the database last reported it (the role in
	// force, SET ROLE's too): the parse check is kept out of the server log then (unparsable).
	superuser bool
	// toldAuth: is_superuser and session_authorization as the greeting told the client
	// (serverLoop's told starts from them).
	toldAuth map[string]string

	done chan struct{} // closed when serverLoop returns
	// ending: why the shim ends the session (a handover's drain terminated its backend,
	// Shim.endInFlight): the backend's FATAL reaches the client with it.
	ending atomic.Pointer[string]
	// backendEnded: serverLoop saw the backend's connection end (not closed by the shim).
	backendEnded atomic.Bool
	// copyFlush: relayUntilSync passed on a Flush the client sent after an extended COPY's
	// CopyDone or CopyFail, before its Sync: what the backend answers then goes out at once,
	// as PostgreSQL's answer to a Flush does, though the shim makes the request's
	// ReadyForQuery (TestExtCopyDoneFlush).
	copyFlush atomic.Bool
	// relayOn: a COPY FROM STDIN the shim runs is relayed (session.relay is set): serverLoop
	// notes the first CommandComplete or error of its request after (copyRelay.outcome).
	relayOn   atomic.Bool
	closeOnce sync.Once

	// clientLoop state.
	stmts   map[string]stmtInfo
	portals map[string]portalInfo
	// reqs counts the extended requests runBatch finished (a Sync's); portalsMax is the size of
	// portals that makes the next Bind forget the portals PostgreSQL dropped (prunePortals), and
	// markReq, markSeq the mark it left: portals bound before request markReq are gone once the
	// entry pushSeq markSeq, or one after, was answered with status idle.
	reqs, markReq, markSeq uint64
	portalsMax             int
	// stmtsMax: the size of stmts that makes the next request learn which of the statements
	// whose Close may have been skipped PostgreSQL still holds (pruneStmts).
	stmtsMax int

	sessionTemp bool // the session made temporary objects: its transactions commit plainly
	// unprepNames: the prepared statements, by name, whose statement makes its transaction one
	// that cannot be prepared (pg_notify), prepared by SQL PREPARE or a Parse: SQL EXECUTE of
	// one is such a statement too. A name leaves with its record in stmts (a Close, DEALLOCATE
	// or DISCARD ALL sure to have run, pruneStmts), or when prepared again while free.
	unprepNames map[string]bool
	// ranDDL: DDL ran since the last COMMIT or ROLLBACK: its COMMIT has the lists of funcs.go
	// read again (noteDDLCommit), a read after the DDL not having seen what it made.
	ranDDL       bool
	txUnprep     bool // the open transaction cannot be prepared
	txWrote      bool // the open transaction ran a statement the lexer takes for a write
	txHold       bool // the open transaction declared a WITH HOLD cursor whose query the lexer takes for a write, which PostgreSQL may run at COMMIT (startCommit)
	readOnlySet  bool // default_transaction_read_only = on was sent for read-only modes, and nothing that may change it since (note)
	unit         unitState
	ebuf         []byte // extended-protocol messages since the last Sync, as received
	items        []item
	lastExt      bool // the last request was extended protocol (COPY ends with an extra Sync)
	copyEndedExt bool // a CopyDone/CopyFail of an extended COPY was just relayed
	// copyEnd: the entry of the passed-through extended COPY FROM STDIN whose CopyDone or
	// CopyFail was just relayed (copyEndedExt), which awaits the ReadyForQuery of a Sync after
	// it (copyEndUnsynced).
	copyEnd *pending
	// copySkip: the client's messages up to its next Sync are dropped, as PostgreSQL skips them
	// after a passed-through extended COPY that failed and a request sent behind its end
	// without a Sync (copyEndUnsynced).
	copySkip bool
	// copyStray: the CopyDone or CopyFail just relayed (copyEndedExt) ended no COPY FROM STDIN
	// in the backend: one the shim ran ended before it, failed (copyRelay.passed).
	copyStray bool
	// copyAsked: the client's last request (a Query, or an extended request's messages up to
	// its Sync or a Flush) holds a COPY FROM STDIN: a copy message the client sends before
	// the COPY opened waits until it does, or until the request failed (awaitCopyOpen).
	copyAsked bool
	// copyAskedAt: copyStarts when copyAsked was set, before the request went out: its COPY
	// opened once copyStarts passes it. A request's parts keep the counts of the COPY of an
	// earlier part (copyPart): copyStarts > 0 took that one's CopyInResponse for the
	// request's (TestCopyDataAheadOfSecondResponse).
	copyAskedAt int
	// copySyncs: Syncs the client sent during a passed-through COPY FROM STDIN, relayed; the
	// client's first message after the COPY that is no copy message (or, for an extended COPY,
	// its Sync) sends copyMark before it (after it).
	copySyncs int
	// copyMarked: the copyMark entry queued by relayCopyIn at a Sync the client sent during a
	// COPY FROM STDIN the shim runs, whose Close and Sync go once the COPY's request is
	// answered (wait, writeMarked) (TestWrappedExtCopyMidSyncReplies).
	copyMarked *pending
	// walking: the request walk runs, while it does; relayCopyIn reads whether its COPY runs in
	// the shim's block (unitState.injected).
	walking *unitState
	// skipRFQ: the request's ReadyForQuery went to the client already (result.rfqPassed): the
	// next emitRFQ of the request sends none.
	skipRFQ    bool
	scratch    []byte
	scratchOwn []byte
	undo       []stmtUndo // what the buffered messages changed in stmts (revertStmts)
	// parsed: the statements a Parse of the extended request being received (up to its Sync)
	// defined, as parsed. A Bind after it in the request finds the new one for sure, whatever
	// PostgreSQL held before: were the Parse skipped or failed (a name still in use, 42P05),
	// PostgreSQL would skip the Bind too. stmts holds what is known after the request.
	parsed map[string]stmtInfo
	// kept: statements of the shim's own kept prepared on the backend (sendKept), by their
	// text; the value is the statement's name.
	kept map[string]string
	// keepOff: a kept statement vanished unseen; sendKept parses every time (sendOwn).
	keepOff bool
	// greeting: what startSession prepared for greet to send.
	greeting []byte

	// unprepAt, wroteAt: pushSeq when txUnprep, txWrote were last noted. A flag belongs to a
	// transaction that has ended once the database answered a request queued after it with
	// status idle (idleSeq greater): the transaction may end where the shim runs no commit
	// procedure (an implicit one at the end of a request passed through, an error), and a
	// request that begins with a part passed straight through does not learn that (txFlags).
	unprepAt, wroteAt, holdAt uint64
	pushSeq                   uint64 // entries queued so far (push); clientLoop only
	// begunAt, ranAt: pushSeq when a BEGIN, and a statement that may take a snapshot or
	// write, were last noted (begun, ran: ever); see txQuiet.
	begunAt, ranAt uint64
	begun, ran     bool

	// roForced: the session's default_transaction_read_only = on is the shim's (read-only
	// modes), and roSaved the client's own value, given back when the mode allows writes again
	// (releaseReadOnly). roSetByClient: the client sent a SET of it to on since the shim last
	// set it, which PostgreSQL does not report when it was on already.
	roForced      bool
	roSaved       string
	roSetByClient bool

	// A statement that may change a setting the lexer depends on, to a value the shim cannot
	// tell (lexerSetting, checkSettings). lexWait: one was sent since the last barrier, so the
	// next request waits for its reply, whose ParameterStatus ends the session when it did.
	// lexUnsure: the extended request being received (up to its Sync) holds one, so a Parse
	// after it ends the session: PostgreSQL would parse it under a setting the shim learns only
	// at the Sync.
	lexWait, lexUnsure bool
}

// stmtInfo is what the shim knows of a prepared statement or portal.
type stmtInfo struct {
	kind         stmtKind
	chain        bool
	temp, unprep bool
	holdWrite    bool // DECLARE … WITH HOLD whose query may write (statement.Hold, a write)
	copyIn       bool
	proc         bool    // CALL
	manyCalls    bool    // a read with calls past those the lexer kept (pastKeptCalls)
	blockOnly    string  // LOCK or DECLARE without WITH HOLD: statement.BlockOnly
	setsRO       bool    // SET default_transaction_read_only to on (setsReadOnly)
	changesRO    bool    // may change default_transaction_read_only (changesReadOnly)
	makesRW      bool    // may make its transaction read-write: refused in read-only modes (makesReadWrite)
	warnsOutside string  // SET LOCAL, SET TRANSACTION, SET CONSTRAINTS: warnsOutsideBlock
	savepoint    string  // SAVEPOINT, RELEASE SAVEPOINT or ROLLBACK TO SAVEPOINT: savepointCommand
	noSnapshot   bool    // one of those, or SHOW, in either protocol: takes no snapshot (noSnapshot)
	text         string  // the statement, kept for DDL only (recorded in tandem.ddl)
	ownObject    string  // changes Tandem's own objects: the refusal (ownobjects.go)
	explainMakes bool    // EXPLAIN ANALYZE of CREATE TABLE … AS and the like: refused (explainMakesRefusal)
	prepareMakes bool    // PREPARE … AS SELECT … INTO: refused (prepareMakesRefusal)
	fromCurrent  string  // DDL with SET name FROM CURRENT the peer cannot replay: the refusal (fromCurrentRefusalOf)
	explainExec  string  // EXPLAIN ANALYZE EXECUTE name: the name, refused when it makes a table (explainMakesRefusal)
	mayDDL       bool    // merged from a DDL statement (mergeStmts): EXPLAIN ANALYZE EXECUTE of it is refused (makesTable)
	execName     string  // EXECUTE name or EXPLAIN ANALYZE EXECUTE name: the prepared statement it runs (execNameOf)
	unprepName   string  // PREPARE name AS … of a statement that cannot be prepared (pg_notify): the name (unprepNames)
	shipAfter    string  // CREATE/DROP INDEX or DETACH PARTITION … CONCURRENTLY without that word: recorded once it ran
	detached     string  // DETACH PARTITION … CONCURRENTLY: the partition as written (statement.Detached)
	addsDefault  bool    // ALTER TABLE … ADD with a default: checked once it ran (ddlcheck.go)
	mayUnkey     bool    // may leave a table without a primary key: REPLICA IDENTITY FULL (ddlcheck.go)
	retypes      bool    // ALTER TABLE … TYPE … USING: its expressions checked before it runs (ddlcheck.go)
	names        namesOp // what it does to the session's prepared statements when it runs
	// closing: a Close or DEALLOCATE of this prepared statement may have been skipped (an error
	// before it in its request), so PostgreSQL holds it or nothing.
	closing bool
	// maybeTx: PostgreSQL holds one of two statements (mergeStmts), one of which begins or ends
	// a transaction block or works on savepoints, and the other not: taken for a write, it
	// could be a COMMIT run plainly, bypassing the dual commit. handleExt refuses a Bind of it.
	maybeTx bool
}

// unknownStmt is a statement the shim knows nothing of: taken for a write.
var unknownStmt = stmtInfo{kind: kindWrite}

// mergeStmts is what the shim knows of a prepared statement that PostgreSQL holds as a or as b.
func mergeStmts(a, b stmtInfo) stmtInfo {
	a.closing, b.closing = false, false
	if a == b {
		return a
	}
	m := unknownStmt
	m.temp, m.unprep, m.copyIn, m.proc = a.temp || b.temp, a.unprep || b.unprep, a.copyIn || b.copyIn, a.proc || b.proc
	m.changesRO = a.changesRO || b.changesRO
	m.makesRW = a.makesRW || b.makesRW
	m.ownObject = a.ownObject
	if m.ownObject == "" {
		m.ownObject = b.ownObject
	}
	m.explainMakes, m.prepareMakes = a.explainMakes || b.explainMakes, a.prepareMakes || b.prepareMakes
	m.fromCurrent = a.fromCurrent
	if m.fromCurrent == "" {
		m.fromCurrent = b.fromCurrent
	}
	m.mayDDL = a.mayDDL || b.mayDDL || a.kind == kindDDL || b.kind == kindDDL
	m.explainExec = a.explainExec
	if m.explainExec == "" {
		m.explainExec = b.explainExec
	}
	m.execName, m.unprepName = a.execName, a.unprepName
	if m.execName == "" {
		m.execName = b.execName
	}
	if m.unprepName == "" {
		m.unprepName = b.unprepName
	}
	m.maybeTx = a.maybeTx || b.maybeTx || a.kind.txControl() || b.kind.txControl() || a.kind == kindSavepoint || b.kind == kindSavepoint
	if a.names != b.names {
		m.names = namesOp{op: 'A'}
	}
	return m
}

// namesOp is what a SQL statement does to the session's prepared statements: PREPARE name
// ('P'), DEALLOCATE name ('D'), DEALLOCATE ALL or DISCARD ALL ('A'; also a DEALLOCATE whose name
// the shim cannot read). 0: nothing.
type namesOp struct {
	op   byte
	name string // as PostgreSQL keys it (see stmtKey)
}

// stmtKey is the name under which PostgreSQL finds a prepared statement or portal: its hash
// tables compare the first NAMEDATALEN-1 bytes only.
func stmtKey(name string) string {
	if len(name) > 63 {
		return name[:63]
	}
	return name
}

// namesOpOf reads what statement st of text does to the session's prepared statements.
func namesOpOf(text string, st statement) namesOp {
	if st.Kind != kindRead && st.Kind != kindNoTxBlock {
		return namesOp{}
	}
	// The first three words, as written: keywords, names and "quoted names"; next[i] is the
	// byte after word i, past blanks (0 at the statement's end or semicolon).
	var w []string
	var next []byte
	for i := st.Start; len(w) < 3; {
		if i = skipBlank(text, i, st.End); i >= st.End {
			break
		}
		tok, end := nextToken(text, i, false)
		if tok != tokWord && tok != tokQuoted {
			break
		}
		w = append(w, text[i:end])
		next = append(next, 0)
		if j := skipBlank(text, end, st.End); j < st.End && text[j] != ';' {
			next[len(next)-1] = text[j]
		}
		i = end
	}
	kw := func(i int, k string) bool { return i < len(w) && w[i][0] != '"' && strings.EqualFold(w[i], k) }
	// name reads word i as a name, after which comes the statement's end (follow "") or one of
	// the bytes in follow.
	name := func(i int, follow string) (string, bool) {
		switch {
		case i >= len(w), w[i][0] == '"' && (len(w[i]) < 3 || w[i][len(w[i])-1] != '"'):
			return "", false
		case follow == "" && next[i] != 0, follow != "" && (next[i] == 0 || strings.IndexByte(follow, next[i]) < 0):
			return "", false
		}
		// PostgreSQL truncates a longer identifier to 63 bytes, at a character's start
		// (UTF-8 assumed).
		n := string(foldName(w[i], nil))
		if len(n) > 63 {
			k := 63
			for k > 0 && !utf8.RuneStart(n[k]) {
				k--
			}
			n = n[:k]
		}
		return n, true
	}
	switch {
	case kw(0, "DISCARD") && kw(1, "ALL"):
		return namesOp{op: 'A'}
	case kw(0, "DEALLOCATE"):
		i := 1
		if kw(1, "PREPARE") && len(w) > 2 {
			i = 2
		}
		if n, ok := name(i, ""); ok && !kw(i, "ALL") {
			return namesOp{op: 'D', name: n}
		}
		return namesOp{op: 'A'}
	case kw(0, "PREPARE") && st.Kind == kindRead:
		// PREPARE name [(types)] AS …; another form is PostgreSQL's error to report.
		if n, ok := name(1, "(aA"); ok {
			return namesOp{op: 'P', name: n}
		}
	}
	return namesOp{}
}

// item is one buffered extended-protocol message.
type item struct {
	typ    byte
	lo, hi int // frame bytes in ebuf
	info   stmtInfo
}

// stmtUndo is a change to session.stmts by a buffered message (item: its index in
// session.items), undone when the shim drops the message unsent: PostgreSQL never saw it.
type stmtUndo struct {
	item int
	name string
	prev stmtInfo
	had  bool
}

// unitState is the state of the request being processed: a Query, or the extended-protocol
// messages up to a Sync (which may arrive in several parts, split by Flush).
type unitState struct {
	open     bool
	injected bool // the shim opened the transaction with BEGIN (an implicit transaction)
	skipping bool // an error ended the request: drop messages until Sync
	st       byte // status at the current point: 'I', 'T', 'E', or 0 when not known
	// assumed: while st is 0, the status when none of the steps sent unanswered since it was
	// known failed, or 0 when that is the status the requests before this one leave (its first
	// part was sent without waiting for them).
	assumed byte
	// roFresh: default_transaction_read_only = on was sent again before a statement that
	// cannot run in a transaction block (walk, read-only modes), and no Execute of the
	// client's was sent since (extUnit.send), so the setting still holds and no transaction
	// has begun or ended.
	roFresh bool
	// pipelined: while st is 0, a part sent unanswered ran an Execute in the implicit
	// transaction open now (pipelineAfter).
	pipelined bool
	// procLeft: a procedure ran outside a transaction block before a BEGIN of the request, or
	// in a part sent before its Sync (session.procGate), not yet waited for: the reply waits
	// until the peer has what it committed (walk).
	procLeft bool
	// copyGoesOn: walk waits for the last part of an extended request it commits in the
	// shim's block, ended by a COPY FROM STDIN the client's Sync follows, which the backend
	// ignores during the data: the request may go on after the CopyDone (relayUntilSync).
	// wentOn: it did: the shim's Sync ended the COPY's Execute in the block, and the rest of
	// the request, up to the client's next Sync, is walked as a part after it (walk).
	copyGoesOn, wentOn bool
}

// pending is one request in flight that ends with a ReadyForQuery.
//
// Replies forwarded for an entry whose result clientLoop waits for (res set, fwdRFQ not) are not
// flushed to the client on their own: clientLoop goes on with the request and the client gets
// them with what follows, at the latest when clientLoop next waits for the client (one write
// per request instead of one per part).
type pending struct {
	fwd       bool // forward the replies (except ReadyForQuery) to the client
	fwdRFQ    bool // forward the ReadyForQuery too
	drop25001 bool // drop the "there is already a transaction in progress" warning
	// ownBegin: the entry is the shim's BEGIN (sendBegin) behind a part of the client's request
	// sent unanswered, whose replies may still come: they are forwarded, and the BEGIN's, the
	// last before ReadyForQuery when it ran, are not. serverLoop holds the last messages back
	// (held) until it sees which they are.
	ownBegin bool
	// holdTag: the entry is a Query whose implicit transaction the shim commits: its last
	// CommandComplete is held back (result.held), as PostgreSQL commits before it completes the
	// last statement and sends a commit's error in its place.
	holdTag bool
	// copyMark: the entry is the shim's Close and Sync (copyMark) sent right behind the end of
	// a passed-through COPY FROM STDIN whose client sent Syncs during it: every ReadyForQuery
	// before its CloseComplete (markSeen) answers one of those Syncs, and goes to the client
	// without ending the entry.
	copyMark, markSeen bool
	// dropRFQ: the entry's ReadyForQuery answers a Sync of the shim's own and does not reach
	// the client, fwdRFQ or not (copyEndUnsynced); set under session.mu.
	dropRFQ bool
	// probe: the entry is a passed-through extended COPY's whose client sent Syncs during the
	// data and another request behind its CopyDone; the shim sent a Sync, a Close and a Sync
	// of its own behind it (copyEndUnsynced); set under session.mu. Every ReadyForQuery before
	// the Close's CloseComplete but the last answers one of the client's Syncs and goes to the
	// client; the last (probeHeld until the next comes) answers the shim's first Sync, and the
	// one after the CloseComplete ends the entry (dropRFQ). probeZ counts those before the
	// CloseComplete, probeSeen notes it; errSeen: an error came for the entry (serverLoop).
	probe, probeSeen, errSeen bool
	probeZ                    int
	probeHeld                 []byte
	// probeAny: the probe is copyPartProbe's, whose message in place of the Close is of the
	// type of the client's next message: any of its replies (probeEnd) counts as the Close's
	// CloseComplete would, and what follows it up to the last ReadyForQuery is the shim's.
	probeAny bool
	// flushProbe: copyPartProbeImplicit's entry, for a part's COPY in the request's implicit
	// transaction that the client ended: its Close goes with a Flush, not a Sync, which would
	// commit that transaction. Its CloseComplete with no error before it (flushOK, under
	// session.mu) means the COPY ended well; an error (flushFailed, under session.mu) means
	// it failed, and a Sync, two Closes and a Sync follow (flushPhase, flushHeld: serverLoop's
	// alone). flushSkip: the COPY failed behind the client's last Sync. flushStage is closed at
	// either outcome.
	flushProbe, flushOK, flushFailed, flushSkip bool
	flushPhase                                  int
	flushHeld                                   []byte
	flushStage                                  chan struct{}
	// probeQuery: copyPartProbe's for a simple Query, whose empty Query goes before its Sync,
	// terminated by a Close and a Sync (writeCopyMark): a backend skipping to the Sync skips
	// it, and keeps the client's unnamed prepared statement, which a Query drops
	// (TestCopyPartProbeKeepsUnnamed). Out of the skipping, its EmptyQueryResponse (queryRan)
	// and its ReadyForQuery (querySkipZ) are the shim's; the ReadyForQuery messages before the
	// Close's CloseComplete but the last answer the client's Syncs.
	probeQuery, queryRan, querySkipZ bool
	// zTaken: serverLoop read a ReadyForQuery it takes for the entry's own, probe not set
	// then; set under session.mu. The entry is answered, though it stays queued until the
	// reply is passed on: copyEndUnsynced must not probe it (TestPassedExtCopyProbeAnswerRace).
	zTaken bool
	// markStatus: the status the ReadyForQuery messages copyMark passes to the client carry
	// instead of the backend's, 0 to keep it: 'I' behind a COPY in the shim's block, which the
	// backend reports failed where PostgreSQL, the COPY in its implicit transaction, reports
	// none (relayCopyIn, endCopyPart).
	markStatus byte
	kept       bool // a statement sendKept sent: an error (or no reply) makes the session forget its kept ones
	// notices: the entry is the shim's COMMIT or PREPARE TRANSACTION of the client's
	// transaction; the notices PostgreSQL raises while it commits (a deferred trigger's RAISE)
	// reach the client, as from the COMMIT PostgreSQL would have run.
	notices bool
	// mayWrite: the entry was sent without the shim's default_transaction_read_only = on
	// (roForced: the mode took writes when the request began). A statement the lexer took for
	// a read runs unwrapped, and commits by itself what it wrote all the same (a function the
	// shim does not know writes): a handover's Drain waits for it (Shim.unwrappedInFlight).
	mayWrite bool
	held     []heldMsg
	res      chan result
	notify   chan struct{} // closed when done; made by barrier under session.mu
	r        result        // serverLoop only, until sent on res
	seq      uint64        // its place in the session's queue, from 1 (push)

	// shift: the entry is a part of a simple Query after its first statements, this many
	// characters into the client's text: the position of an error in it is moved by as much.
	shift int32

	// quietAuth: the entry is one of the shim's statements that switch the transaction to the
	// login user and back for its own rows (asSessionUserSQL): the session_authorization and
	// is_superuser reports PostgreSQL makes for the switch are held, not forwarded; at the
	// ReadyForQuery of the one that ends it (quietAuthEnd) the client hears of the values it
	// was not told yet, if any (serverLoop).
	quietAuth, quietAuthEnd bool
}

// result is what the backend answered to one pending request, or a copy-in event.
type result struct {
	copyIn bool // the backend entered copy-in mode: relay the client's COPY data
	// rfqPassed: the entry's ReadyForQuery went to the client (copyRelay.passed): the
	// request's own is not sent (session.skipRFQ).
	rfqPassed bool
	status    byte
	err       *pgproto3.ErrorResponse // the first error
	tag       string                  // the last CommandComplete tag
	// held: the last CommandComplete and the ParameterStatus messages after it, not forwarded
	// (pending.holdTag).
	held []heldMsg
	row  [][]byte // the first DataRow; nil values are NULL
	// ownBegin entries: the shim's BEGIN ran (begun), with the warning that a transaction block
	// was open already (warned).
	begun, warned bool
}

// heldMsg is a reply serverLoop holds back (pending.ownBegin).
type heldMsg struct {
	typ  byte
	body []byte
}

var errBackendGone = errors.New("local database connection closed")

// protocolError is a client protocol violation; the session ends with SQLSTATE 08P01.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "protocol violation: " + e.msg }

// settingError: the client sent a statement that changes, or may change where the shim cannot
// tell, a setting the lexer depends on; the session ends with SQLSTATE 0A000 before it runs.
type settingError struct{ msg string }

func (e *settingError) Error() string { return e.msg }

// frameReader reads protocol messages (type byte, length, body) into a reused buffer.
type frameReader struct {
	r   *bufio.Reader
	hdr [5]byte
	buf []byte
	max int
	// back: next returns backTyp and backBody, its last result, again (unread).
	back     bool
	backTyp  byte
	backBody []byte
}

// unread makes next return typ and body (its last result) again.
func (f *frameReader) unread(typ byte, body []byte) {
	f.back, f.backTyp, f.backBody = true, typ, body
}

// next returns the next message; body is valid until the next call.
func (f *frameReader) next() (byte, []byte, error) {
	if f.back {
		f.back = false
		return f.backTyp, f.backBody, nil
	}
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(f.hdr[1:]))) - 4
	if n < 0 {
		return 0, nil, &protocolError{fmt.Sprintf("invalid message length %d", n+4)}
	}
	if f.max > 0 && n > f.max {
		return 0, nil, &protocolError{fmt.Sprintf("message of %d bytes exceeds max_message (%d)", n, f.max)}
	}
	if cap(f.buf) > 1<<20 && n < 64<<10 {
		f.buf = nil // give a large buffer back once messages are small again
	}
	if cap(f.buf) < n && n <= frameChunk {
		f.buf = make([]byte, max(n, 8<<10))
	}
	// A larger message's buffer grows as its bytes come, twice as large each time: the length
	// word is only a claim, and a client that sent five bytes would otherwise take max_message
	// (1 GiB by default) of the sidecar's memory.
	b := f.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n, max(2*cap(b), frameChunk))-len(b))
		}
		k, err := io.ReadFull(f.r, b[len(b):min(n, cap(b))])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
	f.buf = b
	return f.hdr[0], b, nil
}

// frameChunk is the largest message frameReader makes room for before its bytes come.
const frameChunk = 1 << 20

func newSession(s *Shim, client net.Conn, cr *frameReader, cw *bufio.Writer, b *backendConn, status byte) *session {
	return &session{
		shim:     s,
		log:      s.log,
		client:   client,
		cr:       cr,
		cw:       cw,
		backend:  b.conn,
		br:       &frameReader{r: bufio.NewReaderSize(b.reader, 32<<10), max: s.maxMessage()},
		bw:       bufio.NewWriterSize(b.conn, 32<<10),
		status:   status,
		done:     make(chan struct{}),
		copyOpen: make(chan struct{}),
		stmts:    make(map[string]stmtInfo),
		portals:  make(map[string]portalInfo),
		parsed:   make(map[string]stmtInfo),

		unprepNames: make(map[string]bool),
	}
}

// greet sends the client the greeting startSession prepared (AuthenticationOk, the local
// database's parameters, its key and ReadyForQuery) and lifts the startup deadline. serveConn
// calls it once the session is registered: as soon as the client has its ReadyForQuery it may
// send a cancel request, which must find the session's key, and the statistics count it.
func (s *session) greet() error {
	s.cmu.Lock()
	s.told = make(map[string]string)
	for b := s.greeting; len(b) >= 5; {
		n := int(binary.BigEndian.Uint32(b[1:5])) + 1
		if n < 5 || n > len(b) {
			break
		}
		var ps pgproto3.ParameterStatus
		if b[0] == 'S' && ps.Decode(b[5:n]) == nil {
			s.told[ps.Name] = ps.Value
		}
		b = b[n:]
	}
	s.cmu.Unlock()
	if _, err := s.cw.Write(s.greeting); err != nil {
		return fmt.Errorf("greet client: %w", err)
	}
	if err := s.cw.Flush(); err != nil {
		return fmt.Errorf("greet client: %w", err)
	}
	s.greeting = nil
	return s.client.SetDeadline(time.Time{})
}

// close closes both connections; both loops then return. Safe to call more than once. A
// backend that may still run what the session counted in the commit gate is watched until it
// ends (Shim.orphaned).
func (s *session) close() {
	s.closeOnce.Do(func() {
		if !s.backendEnded.Load() {
			s.shim.orphaned(s)
		}
		s.client.Close()
		s.backend.Close()
	})
}

// clientStalled ends a session whose client stopped reading after its backend ended
// (clientWriter).
func (s *session) clientStalled() {
	s.log.Info("txshim: session ended: the client reads no replies and its local database session has ended", "user", s.user)
	s.close()
}

// recoverPanic ends a session that hit a bug instead of the whole process, which also serves
// the other sessions and the site's role.
func (s *session) recoverPanic(where string) {
	if v := recover(); v != nil {
		s.log.Error("txshim: session panic; session closed", "in", where, "panic", v, "stack", string(debug.Stack()))
		s.close()
	}
}

// run relays until either side ends.
func (s *session) run(ctx context.Context) {
	defer s.dropNotes()
	// After close: a backend that may still run the procedure stays counted (orphaned).
	defer s.leaveProcGate()
	go s.serverLoop()
	defer func() { <-s.done }()
	defer s.recoverPanic("clientLoop")
	err := s.clientLoop(ctx)
	s.flushClient()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errClientQuit) {
		// A message cut short by the end is dropped: PostgreSQL, reading it, ends the same
		// way as at the end between two messages (an error in a COPY FROM STDIN, the session
		// quietly else), after the replies to what came before it. So it does after a
		// Terminate, which the backend has been sent: the replies to what came before it
		// reach the client (TestTerminateBehindQuery).
		s.inputEnded(ctx, errors.Is(err, errClientQuit) && !errors.Is(err, errClientQuitCopy))
	}
	var pe *protocolError
	if errors.As(err, &pe) {
		// Malformed or oversized: this session ends, with a reason (DESIGN §5.1).
		s.cmu.Lock()
		writeFatal(s.cw, "08P01", "tandem: "+pe.Error())
		s.cmu.Unlock()
		s.log.Warn("txshim: session ended", "user", s.user, "err", err)
	} else if se := (*settingError)(nil); errors.As(err, &se) {
		s.cmu.Lock()
		writeFatal(s.cw, "0A000", "tandem: "+se.msg)
		s.cmu.Unlock()
		s.log.Warn("txshim: session ended", "user", s.user, "reason", se.msg)
	} else if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errClientQuit) {
		s.log.Debug("txshim: session ended", "user", s.user, "err", err)
	}
	s.close()
}

var errClientQuit = errors.New("client terminated the session")

// errClientQuitCopy: a Terminate in the middle of a COPY FROM STDIN, which the backend fails
// instead of ending, and then waits for more.
var errClientQuitCopy = fmt.Errorf("%w mid-COPY", errClientQuit)

// inputEnded: the client's sending side ended between messages (a close, or shutdown(SHUT_WR)
// with the replies still to read), or with a Terminate. PostgreSQL answers every message it
// read before the end, and so does the shim: the backend gets the end after what was relayed
// to it, and the session ends when the backend does (serverLoop), or when ctx does.
//
// quit: the client sent a Terminate, which the backend ends at by itself, after its replies to
// what came before it. The backend's end of its connection stays open until then (or until a
// COPY FROM STDIN opens, which the Terminate fails, and the backend then waits for more; or
// until the client closes its own end, which PostgreSQL's backend would see): a backend with client_connection_check_interval would take its end for its client's loss and
// end in the middle of a query whose replies the client waits for, where PostgreSQL's client
// that sent a Terminate keeps its connection open (TestTerminateBehindSlowQueryConnCheck).
func (s *session) inputEnded(ctx context.Context, quit bool) {
	cw, ok := s.backend.(interface{ CloseWrite() error })
	if !ok || s.bw.Flush() != nil {
		return
	}
	if quit {
		s.mu.Lock()
		open := s.copyOpen
		s.mu.Unlock()
		// The client's own end (connEnded) is passed on, as PostgreSQL's backend would see it.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-s.done:
				return
			case <-ctx.Done():
				return
			case <-open:
				break wait
			case <-tick.C:
				if connEnded(s.client) {
					break wait
				}
			}
		}
	}
	if cw.CloseWrite() != nil {
		return
	}
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

// clientLoop reads the client until it quits or fails.
func (s *session) clientLoop(ctx context.Context) error {
	for {
		if s.cr.r.Buffered() == 0 {
			// About to wait for the client: it gets everything held or emitted for it first,
			// and then the backend what the shim wrote for it without waiting — the SET that
			// puts the client's idle_session_timeout back after a commit (idleRestore): unsent,
			// the timeout would not run until the client's next request
			// (TestIdleSessionTimeoutAfterCommit); sent before the reply, it could end the
			// session before the client had it.
			if err := s.flushClient(); err != nil {
				return err
			}
			if err := s.bw.Flush(); err != nil {
				return err
			}
			s.mu.Lock()
			s.clientIdle = true
			release := len(s.queue) == 0
			s.mu.Unlock()
			if release {
				if err := s.releaseNotes(); err != nil {
					return err
				}
			}
		}
		typ, body, err := s.cr.next()
		s.mu.Lock()
		s.clientIdle = false
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if s.copySkip && typ != 'S' && typ != 'X' {
			continue
		}
		if s.copySkip {
			// The client's Sync after the messages PostgreSQL skipped: its ReadyForQuery.
			s.copySkip = false
			s.push(&pending{fwd: true, fwdRFQ: true})
			if err := s.forward(typ, body, true); err != nil {
				return err
			}
			continue
		}
		if strings.ContainsRune("dcf", rune(typ)) && s.copyHeld() {
			// Copy data right behind an Execute of COPY FROM STDIN held for its Sync, with no
			// Flush between (the client did not wait for the CopyInResponse): PostgreSQL runs
			// the Execute as it reads it and flushes its CopyInResponse, then takes the data.
			// The held messages go as a part, as at a Flush of the client's (which only makes
			// their replies go out sooner), and the data after them: relayed ahead of them, it
			// was dropped by the backend, outside a COPY, which then waited for data that never
			// came (TestExtendedCopyDataAhead). Unread first: the part's walk may relay the
			// COPY's data itself (relayCopyIn).
			s.cr.unread(typ, body)
			if err := s.handleExt(ctx, 'H', nil); err != nil {
				return err
			}
			continue
		}
		if !strings.ContainsRune("dcfHSX", rune(typ)) {
			skip, err := s.endCopyPart(ctx, typ)
			if err != nil {
				return err
			}
			if skip {
				continue
			}
		}
		if s.copyAsked && strings.ContainsRune("dcfHS", rune(typ)) {
			if err := s.awaitCopyOpen(); err != nil {
				return err
			}
		}
		// stray: a copy message after an extended COPY's CopyDone or CopyFail (copyEndedExt),
		// no COPY open: the backend, out of the COPY, ignores it, as PostgreSQL does, and the
		// COPY's end is still told from what follows (TestPassedExtCopyStrayAfterDone).
		stray := s.copyEndedExt && strings.ContainsRune("dcf", rune(typ)) && !s.copyMessage(0)
		if typ != 'S' && typ != 'H' && !stray {
			if s.copyEndedExt && s.copyEnd != nil && !strings.ContainsRune("dcfX", rune(typ)) && !s.unit.open {
				if err := s.copyEndUnsynced(); err != nil {
					return err
				}
			}
			s.copyEndedExt, s.copyEnd = false, nil
			if s.copySkip {
				continue
			}
		}
		if s.copySyncs > 0 && !s.copyEndedExt && !strings.ContainsRune("dcf", rune(typ)) && !s.copyMessage(0) {
			// The first message after a passed-through COPY FROM STDIN whose client sent Syncs
			// during it, and not the Sync that ends an extended one (which the mark follows):
			// the mark goes before it. Not at a simple Query's CopyDone, after which the Query
			// may open another COPY, whose copy-in the mark would end the session in
			// (TestPassedCopyMidSyncTwoCopies); nor kept from an extended COPY whose CopyDone
			// another request followed, for a later COPY's end (TestPassedCopySyncsReset).
			if err := s.copyMark(); err != nil {
				return err
			}
		}
		// passedOpen: a COPY FROM STDIN a passed-through request started is open, which a
		// CopyDone or CopyFail ends (copyEndEntry).
		passedOpen := (typ == 'c' || typ == 'f') && s.copyMessage(0)
		counted := typ
		if stray {
			counted = 0 // it ends no COPY
		}
		switch open := s.copyMessage(counted); {
		case open && (typ == 'H' || typ == 'S'):
			// The backend ignores Flush and Sync in copy-in mode: they pass as they are, and
			// start no request of their own (one left open would meet the next request). But
			// once a bad row ended the COPY, the backend answers each Sync after it with a
			// ReadyForQuery, as PostgreSQL does, which no entry awaits: the COPY's end sends
			// copyMark, which tells them from the replies to the client's next request
			// (TestPassedCopyMidSync).
			if typ == 'S' {
				s.copySyncs++
			}
			if err := s.forward(typ, body, true); err != nil {
				return err
			}
			continue
		case open && !strings.ContainsRune("dcfHSX", rune(typ)):
			// Anything but copy messages aborts the COPY in the backend, which then ends the
			// session (the message is one it cannot skip): it goes straight there.
			if err := s.abortCopy(typ, body); err != nil {
				return err
			}
			continue
		}
		if (typ == 'Q' || typ == 'F') && (s.unit.open || len(s.items) > 0) {
			// Inside an extended-protocol request, before its Sync. After an error PostgreSQL
			// skips it, as the shim does; else it runs it behind the messages before it, in
			// their transaction. A Query or FunctionCall after a COPY part that ended well, in
			// a block the shim can tell, runs there as the request's last step
			// (queryInRequest, callInRequest); any other
			// such message walk cannot split and wrap: the session ends rather than run it out
			// of order.
			if s.unit.skipping {
				continue
			}
			// copyPartImplicit tells only while copyPart is set: left from an earlier
			// request's part, it ended a Query after a COPY's CopyDone that the request went
			// on past (TestWrappedExtCopyDoneThenQueryAfterImplicitPart).
			s.mu.Lock()
			implicit := s.copyPart && s.copyPartImplicit
			s.mu.Unlock()
			joined := false
			if implicit && len(s.items) == 0 {
				// The COPY part ran in the request's implicit transaction, after a procedure,
				// and ended well (endCopyPart): the transaction goes on in a block of the
				// shim's, which takes in what it holds (joinImplicit).
				if joined, err = s.joinImplicit(); err != nil {
					return err
				}
				implicit = !joined
			}
			if len(s.items) == 0 && (!s.unit.procLeft || joined) && !implicit {
				var ran bool
				var err error
				if typ == 'Q' {
					ran, err = s.queryInRequest(ctx, body)
				} else {
					ran, err = s.callInRequest(ctx, typ, body)
				}
				if err != nil {
					return err
				}
				if ran && joined {
					// The procedure's implicit transaction, which would have committed plainly
					// at the Sync, is the shim's block now, ended (or left to the client's
					// commit, a BEGIN of its) with the Query or call, whose reply waited for
					// what the procedure committed: the session leaves the commit gate the
					// procedure passed (procGate) — counted there until the client's Sync, it
					// held a hold (catch-up) and a handover's Drain up, which then ended the
					// session (TestCopyPartJoinedLeavesGate). A later procedure of the request
					// passes it again (walk).
					s.leaveProcGate()
				}
				if ran {
					continue
				}
			}
			return &protocolError{fmt.Sprintf("message type %q inside an extended-protocol request (before Sync) is not supported", typ)}
		}
		switch typ {
		case 'Q':
			err = s.handleQuery(ctx, body)
		case 'P', 'B', 'D', 'E', 'C', 'H', 'S':
			if typ == 'S' && s.copyEndedExt && !s.unit.open {
				// An extended COPY ends with a second Sync; its ReadyForQuery answers the entry
				// of the first one, which the backend ignored while in copy-in mode.
				s.copyEndedExt, s.copyEnd = false, nil
				if s.copyStray {
					// No entry awaits its ReadyForQuery (the COPY's was answered at its failure):
					// unqueued, the next request's first entry would take it for its own — the
					// shim's BEGIN, whose replies then reached the client
					// (TestWrappedExtCopyStraySyncThenRequest).
					s.push(&pending{fwd: true, fwdRFQ: true})
				}
				if err = s.forward(typ, body, s.copySyncs == 0); err == nil {
					err = s.copyMark()
				}
				break
			}
			if typ == 'H' && s.copyEndedExt && !s.unit.open && len(s.items) == 0 {
				// A Flush between an extended COPY's CopyDone and its Sync, or the request
				// after it (copyEndUnsynced): the backend flushes and goes on as without it. It
				// starts no request of the client's, and the COPY's end is still told from what
				// follows (TestPassedExtCopyDoneFlushThenRequest).
				err = s.forward(typ, body, true)
				break
			}
			err = s.handleExt(ctx, typ, body)
		case 'd', 'c', 'f':
			if typ == 'd' || stray {
				err = s.forward(typ, body, s.cr.r.Buffered() == 0)
				break
			}
			var end *pending
			if passedOpen {
				end = s.copyEndEntry()
			}
			err = s.forward(typ, body, true)
			s.copyEndedExt, s.copyStray = s.lastExt, !passedOpen
			if s.lastExt {
				s.copyEnd = end
			}
		case 'F':
			err = s.handleFunctionCall(ctx, typ, body)
		case 'X':
			s.forward(typ, body, true)
			return errClientQuit
		default:
			return &protocolError{fmt.Sprintf("unexpected message type %q", typ)}
		}
		if err != nil {
			return err
		}
	}
}

// endCopyPart ends, at the client's first message after it that is no copy message, the
// extended request whose COPY FROM STDIN, in a part sent unanswered (copyPart), a Sync of the
// client's ended once a bad row had failed it (copyPartDone): PostgreSQL answered that Sync
// and, out of the COPY, drops the copy messages that still come and runs the message as a
// request of its own. The shim's block the part ran in, failed, is rolled back, and the
// request the walk followed is over; what the backend answers the client's Syncs is
// told from what follows (copyMark) (TestCopyPartSyncThenRequest).
//
// Syncs of the client's during the COPY none of which was answered yet (copySyncs, no
// copyPartDone) leave it open whether the COPY failed: the shim then asks the backend
// (copyPartProbe), while the client has not ended the COPY. skip: the COPY failed behind the client's last Sync, and PostgreSQL skips
// what the client sends up to its next Sync, typ's message with it (copySkip).
func (s *session) endCopyPart(ctx context.Context, typ byte) (skip bool, err error) {
	s.mu.Lock()
	done, st := s.copyPartDone, s.copyPartStatus
	// inImplicit: the part's COPY ran in the request's implicit transaction (a procedure
	// before it), which its failure ends.
	inImplicit := s.copyPart && s.copyPartImplicit
	var mark, probe *pending
	// ended: the client ended the COPY (its CopyDone or CopyFail counted), which the backend
	// may have ended well, the client's Syncs during it ignored: the request goes on then
	// (TestCopyPartSyncThenDoneRequest).
	ended := s.copyStarts <= s.copyEnds
	// implicit: the COPY runs in the request's implicit transaction, which the probe's Sync
	// would commit when the COPY ended well (copyPartProbeImplicit); once an error failed the
	// part, a Sync commits nothing.
	// A Query or FunctionCall after the COPY, with no Sync of the client's during it and
	// nothing held before it: PostgreSQL skips it, up to the client's Sync, once the part
	// failed (a bad row, a CopyFail), and runs it in the request's transaction else, which the
	// shim then takes into a block of its own (joinImplicit) and walks it in (clientLoop). The
	// same probe tells which, harmless in a block too,
	// its Sync sent only after an error (TestCopyPartFailedThenQuery).
	query := (typ == 'Q' || typ == 'F') && s.copySyncs == 0 && len(s.items) == 0
	implicit := !done && s.copyPart && ended && (s.copySyncs > 0 && s.copyPartImplicit && !s.copyPartErr || query)
	if !done && s.copyPart && s.copySyncs > 0 && !implicit {
		// Queued under the lock serverLoop finds a ReadyForQuery with no entry under: each of
		// the backend's answers to the client's Syncs read after this is the probe's.
		q := typ == 'Q' && !ended
		probe = &pending{fwd: true, probe: true, probeAny: !q, probeQuery: q, dropRFQ: true, markStatus: st, notify: make(chan struct{})}
		s.pushLocked(probe)
	}
	if done {
		s.copyPart, s.copyPartStatus, s.copyPartDone, s.copyPartErr = false, 0, false, false
		s.copyStarts, s.copyEnds = 0, 0
		s.copyChangedLocked()
		if s.copySyncs > 0 {
			// The mark is queued as copyPart goes, under the same lock: the backend's answers
			// to the client's Syncs read after, no entry awaiting them else, carry
			// copyPartStatus as the mark's (TestCopyPartSyncsThenRequestPiped,
			// TestCopyPartSyncThenRequestWindow).
			s.copySyncs = 0
			mark = &pending{copyMark: true, markStatus: st}
			s.pushLocked(mark)
		}
	}
	s.mu.Unlock()
	if implicit {
		var goesOn bool
		if skip, goesOn, err = s.copyPartProbeImplicit(); err != nil || goesOn {
			return false, err
		}
	} else if probe != nil {
		var goesOn bool
		if skip, goesOn, err = s.copyPartProbe(typ, probe, ended); err != nil || goesOn {
			return false, err
		}
	} else if !done {
		return false, nil
	}
	if h := s.shim.hooks.copyPartEnded.get(); h != nil && done {
		h()
	}
	if mark != nil {
		if err := s.writeCopyMark(); err != nil {
			return false, err
		}
	}
	if s.unit.injected {
		if _, err := s.capture("ROLLBACK"); err != nil {
			return false, err
		}
		s.txUnprep, s.txWrote, s.txHold = false, false, false
	}
	if implicit && inImplicit && s.unit.procLeft && s.procGate != nil {
		// A procedure before the COPY committed by itself, and the COPY's failure ended the
		// request's implicit transaction (the probe's Sync): what the procedure committed
		// stays, on this database alone until the peer has it. The client's reply (its
		// Sync's ReadyForQuery, or the next request's) waits for that, as at any other end of
		// such a request (runBatch, walk); forgotten with the unit, it went out at once
		// (TestCopyPartFailedAfterCallWaitsForPeer).
		if _, err := s.awaitLeft(ctx, policyFor(*s.procGate), 'I'); err != nil {
			return false, err
		}
	}
	s.unit = unitState{}
	s.mu.Lock()
	s.partWrite, s.partUnsure = false, 0
	s.mu.Unlock()
	s.leaveProcGate()
	clear(s.parsed)
	s.reqs++
	s.copySkip = skip
	return skip, nil
}

// copyPartProbe asks the backend, for endCopyPart, whether the COPY of the part sent
// unanswered (copyPart) failed, its client's Syncs during it (copySyncs) not answered yet, nor
// maybe ever, when typ's message came. PostgreSQL, still copying, ends the session at that
// message (08P01, naming its type); once a bad row failed the COPY, it answered each Sync
// after the row, ending the COPY's request, and runs the message as a request of its own (in
// the client's block, failed, when the COPY ran in it); and after a bad row behind the last
// Sync it skips the message up to the client's next Sync. Passed on as it is, the message ran
// in the shim's block, failed since the bad row (25P02).
//
// The probe (pending.probe, probeAny) is a Sync, which the backend ignores while it copies
// and which ends the skipping of a failed COPY, and a message of typ's type, harmless out of a
// COPY, with its terminator: in the COPY it ends the session as the client's would, the error
// going to the client; out of it the ReadyForQuery messages before the message's reply but
// the last answer the client's Syncs, and go to the client (with copyPartStatus, markStatus);
// none means the COPY failed behind them (skip). For a Query, the message goes before the Sync
// (pending.probeQuery): out of the COPY it ran or was skipped, which tells the same.
//
// ended: the client ended the COPY (CopyDone, CopyFail), so the backend copies no more, and the
// message is a Close, harmless in a transaction block too (the part's COPY runs in one, the
// shim's or the client's: one in the request's implicit transaction, which the leading Sync
// would commit, has copyPartProbeImplicit's probe instead), whatever typ is. goesOn: none of
// the client's Syncs was answered and no error came, the COPY ended well: PostgreSQL goes on
// with the request, which the probe's Sync did not end in the block.
func (s *session) copyPartProbe(typ byte, p *pending, ended bool) (skip, goesOn bool, err error) {
	buf, _ := (&pgproto3.Sync{}).Encode(nil)
	var msgs []pgproto3.FrontendMessage
	if ended {
		typ = 'C'
	}
	switch typ {
	case 'Q':
		// Answered with EmptyQueryResponse and a ReadyForQuery of its own out of a skipping,
		// which a Query does not end: it goes before the Sync, which the Close and the Sync
		// of copyMark follow (pending.probeQuery). Past the Sync, the Query would drop the
		// client's unnamed prepared statement where PostgreSQL skips the client's Query.
		buf = buf[:0]
		msgs = []pgproto3.FrontendMessage{&pgproto3.Query{}, &pgproto3.Sync{}, &pgproto3.Close{ObjectType: 'S', Name: copyMarkName}, &pgproto3.Sync{}}
	case 'F':
		// No function has OID 0: an error, and a ReadyForQuery of its own.
		msgs = []pgproto3.FrontendMessage{&pgproto3.FunctionCall{}}
	case 'P':
		msgs = []pgproto3.FrontendMessage{&pgproto3.Parse{Name: copyMarkName}, &pgproto3.Close{ObjectType: 'S', Name: copyMarkName}, &pgproto3.Sync{}}
	case 'B':
		msgs = []pgproto3.FrontendMessage{&pgproto3.Bind{DestinationPortal: copyMarkName, PreparedStatement: copyMarkName}, &pgproto3.Sync{}}
	case 'D':
		msgs = []pgproto3.FrontendMessage{&pgproto3.Describe{ObjectType: 'S', Name: copyMarkName}, &pgproto3.Sync{}}
	case 'E':
		msgs = []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: copyMarkName}, &pgproto3.Sync{}}
	default: // 'C'
		msgs = []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: copyMarkName}, &pgproto3.Sync{}}
	}
	for _, m := range msgs {
		if buf, err = m.Encode(buf); err != nil {
			return false, false, err
		}
	}
	if err := s.probeRound(buf, p.notify, nil); err != nil {
		return false, false, err
	}
	s.mu.Lock()
	if ended && p.probeZ < 2 && !p.errSeen && !s.copyPartErr {
		// No error: the COPY ended well, the client's Syncs ignored.
		s.mu.Unlock()
		s.copySyncs = 0
		return false, true, nil
	}
	s.copyPart, s.copyPartStatus, s.copyPartDone, s.copyPartErr = false, 0, false, false
	s.copyStarts, s.copyEnds = 0, 0
	s.copyChangedLocked()
	s.mu.Unlock()
	s.copySyncs = 0
	if p.probeQuery {
		// The Query skipped: the COPY failed behind the client's last Sync.
		return !p.queryRan, false, nil
	}
	// The first ReadyForQuery answers the probe's Sync: none of the client's was answered.
	return p.probeZ < 2, false, nil
}

// probeRound sends buf, a probe of copyPartProbe's, to the backend and waits until a or b (nil:
// never) is closed — the probe's reply read (serverLoop) — or the backend is gone.
func (s *session) probeRound(buf []byte, a, b <-chan struct{}) error {
	if _, err := s.bw.Write(buf); err != nil {
		return err
	}
	if err := s.bw.Flush(); err != nil {
		return err
	}
	select {
	case <-a:
	case <-b:
	case <-s.done:
		return errBackendGone
	}
	return nil
}

// copyPartProbeImplicit is endCopyPart's probe for a part's COPY FROM STDIN that runs in the
// request's implicit transaction (copyPartImplicit), which the client ended after Syncs during
// it, none answered yet. copyPartProbe's leading Sync would commit that transaction when the
// COPY ended well, the client's Syncs ignored: PostgreSQL goes on with the request in it, and
// an error later in the request rolls the COPY's rows back with the rest
// (TestCopyPartImplicitSyncThenDone). A Close with a Flush asks first: its CloseComplete with
// no error before it means the COPY ended well (goesOn); an error means the transaction
// failed, and a Sync, two Closes and a Sync tell, as copyPartProbe's do, whether the backend
// answered Syncs of the client's (skip when none: the COPY failed behind the last).
func (s *session) copyPartProbeImplicit() (skip, goesOn bool, err error) {
	p := &pending{fwd: true, flushProbe: true, dropRFQ: true, notify: make(chan struct{}), flushStage: make(chan struct{})}
	wake := make(chan struct{})
	s.mu.Lock()
	s.pushLocked(p)
	if s.copyPartErr {
		// Read with no entry queued, since endCopyPart looked.
		close(wake)
	} else {
		s.copyPartWake = wake
	}
	s.mu.Unlock()
	cl := &pgproto3.Close{ObjectType: 'S', Name: copyMarkName}
	buf, _ := cl.Encode(nil)
	buf, _ = (&pgproto3.Flush{}).Encode(buf)
	if err := s.probeRound(buf, p.flushStage, wake); err != nil {
		return false, false, err
	}
	s.mu.Lock()
	s.copyPartWake = nil
	ok := p.flushOK
	s.mu.Unlock()
	s.copySyncs = 0
	if ok {
		return false, true, nil
	}
	buf, _ = (&pgproto3.Sync{}).Encode(buf[:0])
	buf, _ = cl.Encode(buf)
	buf, _ = cl.Encode(buf)
	buf, _ = (&pgproto3.Sync{}).Encode(buf)
	if err := s.probeRound(buf, p.notify, nil); err != nil {
		return false, false, err
	}
	s.mu.Lock()
	s.copyPart, s.copyPartStatus, s.copyPartDone, s.copyPartErr = false, 0, false, false
	s.copyStarts, s.copyEnds = 0, 0
	s.copyChangedLocked()
	s.mu.Unlock()
	return p.flushSkip, false, nil
}

// flushProbe's phases (pending.flushPhase), read by serverLoop (flushProbeReply).
const (
	flushAsked    = iota // the Close and Flush sent
	flushErred           // an error came first: the Sync, two Closes and a Sync follow
	flushClosed          // past the first CloseComplete of a failed COPY
	flushAnswered        // the backend answered Syncs of the client's: the probe's replies left
	flushSkipped         // it answered none: the COPY failed behind the client's last Sync
	flushEnded
)

// flushProbeReply takes, in serverLoop, the backend's message typ for copyPartProbeImplicit's
// entry p; done: the message is the shim's, or one of the client's ReadyForQuery messages sent
// on here; else it is handled as for any entry (the COPY's CommandComplete and error go to
// the client, the probe's last ReadyForQuery ends the entry, dropped).
func (s *session) flushProbeReply(p *pending, typ byte, body []byte) (done bool, err error) {
	stage := func() {
		select {
		case <-p.flushStage:
		default:
			close(p.flushStage)
		}
	}
	switch ph := p.flushPhase; {
	case ph == flushAsked && typ == 'E':
		s.mu.Lock()
		p.flushFailed = true
		stage()
		s.mu.Unlock()
		p.flushPhase = flushErred
	case (ph == flushAsked || ph == flushErred) && typ == 'Z':
		// Answers a Sync of the client's, or the probe's first Sync (told at the next '3').
		if p.flushHeld != nil {
			if err := s.toClient('Z', p.flushHeld, false); err != nil {
				return true, err
			}
		}
		p.flushHeld = append([]byte(nil), body...)
		return true, nil
	case ph == flushAsked && typ == '3':
		s.mu.Lock()
		if !s.copyPartErr && !p.flushFailed {
			// Nothing failed: the COPY ended well, its transaction still open.
			p.flushOK, p.flushPhase = true, flushEnded
			s.queue[0] = nil
			s.queue = s.queue[1:]
			stage()
			close(p.notify)
			s.mu.Unlock()
			return true, nil
		}
		p.flushFailed = true
		stage()
		s.mu.Unlock()
		p.flushPhase = flushClosed
		return true, nil
	case ph == flushErred && typ == '3':
		p.flushPhase = flushClosed
		return true, nil
	case ph == flushClosed && typ == 'Z':
		// The first Close was answered before the probe's Sync: the ReadyForQuery held
		// answers the client's last Sync.
		if err := s.toClient('Z', p.flushHeld, s.br.r.Buffered() == 0); err != nil {
			return true, err
		}
		p.flushHeld, p.flushPhase = nil, flushAnswered
		return true, nil
	case ph == flushClosed && typ == '3':
		// Both Closes answered after the ReadyForQuery held, the probe's first Sync's: the
		// first Close was skipped.
		p.flushHeld, p.flushSkip, p.flushPhase = nil, true, flushSkipped
		return true, nil
	case (ph == flushAnswered || ph == flushSkipped) && typ == '3':
		return true, nil
	case (ph == flushAnswered || ph == flushSkipped) && typ == 'Z':
		p.flushPhase = flushEnded
	}
	return false, nil
}

// awaitCopyOpen waits, at a copy message of the client's whose last request holds a COPY FROM
// STDIN (copyAsked), or a Flush or Sync, which belongs to the COPY once it is open, until the backend opened that COPY (its CopyInResponse read), or answered
// the request without opening it (an error before it), or failed the part of the request that
// holds it, sent unanswered (copyPart, copyPartErr). A client may send its data without waiting
// for the CopyInResponse, as PostgreSQL lets it; read before it, the data was taken for data
// after no COPY (stray): a passed-through extended COPY's CopyDone left its entry waiting for a
// ReadyForQuery that never came, the session hung (TestCopyDataAheadOfResponse). Once the COPY
// opened (copyStarts past copyAskedAt), the data comes after it, and nothing is waited for: an extended COPY's
// request is answered only after the client's Sync, which comes after the data.
func (s *session) awaitCopyOpen() error {
	s.mu.Lock()
	if s.copyStarts > s.copyAskedAt || s.copyPart && s.copyPartErr {
		s.mu.Unlock()
		return nil
	}
	if !s.copyPart {
		s.mu.Unlock()
		if _, err := s.barrier(); err != nil && !errors.Is(err, errCopyOpen) {
			return err
		}
		return nil
	}
	// The part was sent with no entry awaiting its reply: the backend opens the COPY or
	// fails a step, and sends nothing else.
	wake, opened := make(chan struct{}), s.copyOpen
	s.copyPartWake = wake
	s.mu.Unlock()
	if err := s.bw.Flush(); err != nil {
		return err
	}
	select {
	case <-opened:
	case <-wake:
	case <-s.done:
		return errBackendGone
	}
	s.mu.Lock()
	s.copyPartWake = nil
	s.mu.Unlock()
	return nil
}

// noteCopyAsked notes, as copyAsked is set for a request not sent yet, how many COPY FROM
// STDIN opened before it (copyAskedAt).
func (s *session) noteCopyAsked() {
	s.mu.Lock()
	s.copyAskedAt = s.copyStarts
	s.mu.Unlock()
}

// probeEnd are the types of the replies that may answer copyPartProbe's message out of a COPY.
const probeEnd = "13IE"

// copyEndEntry returns, at a CopyDone or CopyFail of the client's that ends a passed-through
// COPY FROM STDIN (copyMessage counted it), the entry that awaits the COPY's ReadyForQuery: the
// last queued, one whose ReadyForQuery goes to the client; nil if there is none such.
func (s *session) copyEndEntry() *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 || s.copyStarts != s.copyEnds {
		return nil
	}
	if p := s.queue[len(s.queue)-1]; p.fwdRFQ && p.res == nil && !p.copyMark {
		return p
	}
	return nil
}

// copyEndUnsynced ends a passed-through extended COPY FROM STDIN whose client sent another
// request behind its CopyDone (or CopyFail) rather than a Sync. PostgreSQL ignored the COPY's
// Sync during the data, so it answers the COPY and that request with one ReadyForQuery, the
// latter's; the COPY's entry awaited one of its own, which took the request's, whose entry then
// waited for ever (TestPassedExtCopyDoneThenRequest). A Sync of the shim's answers the COPY's
// entry now, its ReadyForQuery dropped (dropRFQ), and the status tells whether the COPY
// failed: PostgreSQL then skips what the client sends up to its Sync (copySkip).
//
// After Syncs during the COPY (copySyncs), the backend answered those it read once a bad row
// had failed the COPY, each with a ReadyForQuery, the first of which answers the entry; it
// ignored those before. An entry answered already leaves the replies to copyMark, sent before
// the request (clientLoop): the COPY failed, and the backend, past a Sync, runs the request.
// Else the shim's probe tells them apart (pending.probe): a Sync, a Close and a Sync, whose
// first Sync ends the skipping of a COPY that failed after the client's last Sync, so that
// the Close is answered; the ReadyForQuery messages before its CloseComplete but the last
// answer the client's Syncs, and the COPY failed past them when there are none and an error
// came (TestPassedExtCopyMidSyncThenRequest).
func (s *session) copyEndUnsynced() error {
	p, syncs := s.copyEnd, s.copySyncs
	s.mu.Lock()
	queued := slices.Contains(s.queue, p) && !p.zTaken
	if syncs > 0 && !queued {
		s.mu.Unlock()
		return nil
	}
	p.dropRFQ = true
	p.probe = syncs > 0
	s.mu.Unlock()
	writeHeader(s.bw, 'S', 0)
	if syncs > 0 {
		s.copySyncs = 0
		if err := s.writeCopyMark(); err != nil {
			return err
		}
	}
	st, err := s.barrier()
	if err != nil {
		return err
	}
	if syncs > 0 {
		s.copySkip = p.probeZ == 1 && p.errSeen
	} else {
		s.copySkip = st == 'E'
	}
	return nil
}

// copyMark sends, when the client sent Syncs during the passed-through COPY FROM STDIN that
// ended (copySyncs), a request of the shim's own: the backend answers those
// Syncs it read once a bad row had ended the COPY with a ReadyForQuery each, which serverLoop
// relays to the client up to the request's CloseComplete, whatever entry the client's next
// request queued meanwhile. None is taken for the reply to another entry.
func (s *session) copyMark() error {
	if s.copySyncs == 0 {
		return nil
	}
	s.copySyncs = 0
	s.push(&pending{copyMark: true})
	return s.writeCopyMark()
}

// writeCopyMark writes copyMark's messages, for an entry queued already.
func (s *session) writeCopyMark() error {
	// A Close of a statement that never exists, and a Sync: answered with CloseComplete even in
	// a failed transaction block, it changes nothing of the session's. Not an empty simple
	// Query, which drops the client's unnamed prepared statement (the COPY's), which the client
	// may bind again (TestPassedCopyMidSyncKeepsUnnamed).
	writeHeader(s.bw, 'C', len(copyMarkName)+2)
	s.bw.WriteByte('S')
	s.bw.WriteString(copyMarkName)
	s.bw.WriteByte(0)
	writeHeader(s.bw, 'S', 0)
	return s.bw.Flush()
}

// copyMarkName names the statement copyMark closes, which no one prepares.
const copyMarkName = "tandem_shim_copy_mark"

// serverLoop reads the backend and dispatches each reply by the pending entry at the head of
// the queue.
func (s *session) serverLoop() {
	defer close(s.done)
	defer s.close()
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.status != 'I' {
			s.shim.stats.inTx.Add(-1)
		}
	}()
	defer s.recoverPanic("serverLoop")
	var cur *pending
	// loose is an error that came while no entry was pending: one of a part of an extended
	// request sent without a terminator (after a Flush). PostgreSQL then skips the rest of the
	// request, the next part included, so the next entry that awaits a result takes it as its
	// own: walk must not take that part for one that ran.
	var loose *pgproto3.ErrorResponse
	// told: the session_authorization and is_superuser values the client was told last;
	// authHeld: those PostgreSQL reported to the shim's own statements that switch the user
	// and back (pending.quietAuth), since. PostgreSQL, running the client's statement alone,
	// says nothing of a switch it never makes (TestSessionAuthorizationDDLParameterStatus).
	// The client was told its values first in the greeting: a role in the startup packet
	// makes the switch's last report one it knows (TestStartupRoleDDLParameterStatus).
	told, authHeld := maps.Clone(s.toldAuth), map[string]string{}
	if told == nil {
		told = map[string]string{}
	}
	for {
		typ, body, err := s.br.next()
		if err != nil {
			// Not a reply the shim refuses (protocolError: too large, malformed): the backend
			// lives on, running what it sent it from, and the session's end leaves it watched
			// (TestDrainOversizedReplyProcedure).
			var pe *protocolError
			if !errors.Is(err, net.ErrClosed) && !errors.As(err, &pe) {
				s.backendEnded.Store(true)
			}
			if errors.As(err, &pe) {
				s.cmu.Lock()
				writeFatal(s.cw, "54000", "tandem: reply from the database: "+pe.msg)
				s.cmu.Unlock()
				s.log.Warn("txshim: session ended", "user", s.user, "err", err)
			} else if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				s.log.Debug("txshim: backend read", "err", err)
			}
			why := s.ending.Load()
			if why != nil {
				// Not waiting long for a client that does not read.
				_ = s.client.SetWriteDeadline(time.Now().Add(time.Second))
			}
			// What the backend said before its end reaches the client, as from PostgreSQL:
			// replies relayed unflushed (an entry whose ReadyForQuery the shim makes) would
			// be lost — the error and FATAL of a COPY FROM STDIN whose client half-closed
			// its socket mid-data (TestHalfClosedMidCopy).
			s.flushClient()
			if why != nil {
				s.cmu.Lock()
				writeFatal(s.cw, "57P01", *why)
				s.cmu.Unlock()
			}
			return
		}
		if typ == 'E' && s.ending.Load() != nil && isFatal(body) {
			// The backend's end, which the shim brought about: the client gets the shim's
			// reason instead, as the session ends (below).
			continue
		}
		if cur == nil {
			s.mu.Lock()
			if len(s.queue) > 0 {
				cur = s.queue[0]
			} else if typ == 'Z' && len(body) == 1 {
				// No entry awaits it: a Sync the client sent during a COPY its part sent
				// unanswered, answered once a bad row ended the COPY (copyPartStatus). Noted
				// under the lock the queue was found empty under: endCopyPart, which queues
				// its probe only while no such Sync was answered (copyPartDone), and this
				// agree on which of the two the ReadyForQuery belongs to
				// (TestCopyPartBadRowSyncRequestPiped).
				if st := s.copyPartStatus; s.copyPart && st != 0 {
					body = []byte{st}
				}
				s.copyPartDone = s.copyPartDone || s.copyPart
			}
			s.mu.Unlock()
			if cur != nil && loose != nil {
				if cur.res != nil {
					cur.r.err = loose
				}
				loose = nil
			}
		}
		fwd := cur == nil || cur.fwd
		capture := cur != nil && cur.res != nil
		hold := capture && !cur.fwdRFQ
		if fwd && cur != nil && cur.r.held != nil && typ != 'Z' && typ != 'S' && typ != 'A' {
			// The CommandComplete held back (pending.holdTag) was not the last: it goes before
			// what follows it. Not before ParameterStatus, which PostgreSQL sends just before
			// ReadyForQuery, nor before a notification, which waits for the ReadyForQuery.
			for _, m := range cur.r.held {
				if err := s.toClient(m.typ, m.body, false); err != nil {
					return
				}
			}
			cur.r.held = nil
		}
		if cur != nil && cur.flushProbe {
			if done, err := s.flushProbeReply(cur, typ, body); err != nil {
				return
			} else if done {
				if cur.flushPhase == flushEnded {
					cur = nil // answered without a ReadyForQuery (flushOK)
				}
				continue
			}
		}
		if cur != nil && cur.probeQuery && !cur.probeSeen {
			// Set before the entry was queued; read by serverLoop alone after.
			if typ == 'I' && !cur.queryRan {
				cur.queryRan, cur.querySkipZ = true, true
				continue
			}
			if typ == 'Z' && cur.querySkipZ {
				cur.querySkipZ = false
				continue
			}
		}
		if cur != nil && (typ == 'Z' || typ == '3') && !cur.probeSeen {
			s.mu.Lock()
			probe := cur.probe
			if !probe && typ == 'Z' {
				cur.zTaken = true
			}
			s.mu.Unlock()
			if probe && typ == '3' {
				// The shim's Close: the ReadyForQuery held answers its first Sync.
				cur.probeSeen, cur.probeHeld = true, nil
				continue
			}
			if probe {
				if cur.probeHeld != nil {
					// One of the client's Syncs during the COPY, answered once it failed.
					b := cur.probeHeld
					if cur.markStatus != 0 && len(b) == 1 {
						b = []byte{cur.markStatus}
					}
					if err := s.toClient(typ, b, s.br.r.Buffered() == 0); err != nil {
						return
					}
				}
				cur.probeZ++
				cur.probeHeld = append([]byte(nil), body...)
				continue
			}
		}
		if cur != nil && cur.probeAny && typ != 'Z' {
			if !cur.probeSeen && cur.probeZ > 0 && strings.IndexByte(probeEnd, typ) >= 0 {
				// The reply to the shim's message: the ReadyForQuery held answers its first Sync.
				cur.probeSeen, cur.probeHeld = true, nil
			}
			if cur.probeSeen {
				continue
			}
		}
		if cur != nil && cur.copyMark && !cur.markSeen {
			if typ == '3' {
				cur.markSeen = true
				continue
			}
			if typ == 'Z' {
				// A Sync's during the COPY (copyMark).
				if cur.markStatus != 0 && len(body) == 1 {
					body = []byte{cur.markStatus}
				}
				if err := s.toClient(typ, body, s.br.r.Buffered() == 0); err != nil {
					return
				}
				continue
			}
		}
		switch typ {
		case 'Z':
			loose = nil
			if cur == nil || len(body) != 1 {
				break // unexpected: pass it on
			}
			if cur.quietAuthEnd {
				for _, name := range []string{"is_superuser", "session_authorization"} {
					if v, ok := authHeld[name]; ok && v != told[name] {
						b, _ := (&pgproto3.ParameterStatus{Name: name, Value: v}).Encode(nil)
						if err := s.toClient('S', b[5:], false); err != nil {
							return
						}
						told[name] = v
					}
				}
				clear(authHeld)
			}
			if cur.ownBegin {
				fwd, n := ownBeginReplies(cur.held)
				for _, m := range fwd {
					if err := s.toClient(m.typ, m.body, false); err != nil {
						return
					}
				}
				cur.r.begun, cur.r.warned, cur.held = n > 0, n == len(ownBeginTail), nil
			}
			// Counted before the reply goes out: a client that asks (Stats, the status page)
			// once it is told where its session is finds it counted.
			if (s.status == 'I') != (body[0] == 'I') {
				if body[0] == 'I' {
					s.shim.stats.inTx.Add(-1)
				} else {
					s.shim.stats.inTx.Add(1)
				}
			}
			s.mu.Lock()
			rl := s.relay
			pass := rl != nil && rl.p == cur && !rl.ended && !rl.passed && !cur.fwdRFQ
			drop := cur.dropRFQ
			if pass {
				// The entry of a COPY FROM STDIN the shim runs, answered before the client
				// ended the COPY: it failed, and PostgreSQL sends its ReadyForQuery at once — a
				// simple Query's at the error, an extended one's at a Sync the client sent
				// after the bad row. The client gets it now, not the request's the shim makes
				// (result.rfqPassed); relayCopyIn ends the relay (copyRelay.passed)
				// (TestWrappedExtCopyMidSyncAnsweredAtOnce, TestWrappedCopyAnsweredAtOnce).
				rl.passed, cur.r.rfqPassed = true, true
			}
			s.mu.Unlock()
			if pass {
				b := body
				if rl.status != 0 {
					b = []byte{rl.status}
				}
				if err := s.toClient(typ, b, true); err != nil {
					return
				}
			}
			// The reply goes to the client before the entry leaves the queue: whoever waits for
			// it (barrier) must not write what comes next — an error that ends the session, a
			// reply of its own — ahead of it.
			if ready := s.shim.hooks.ready.get(); cur.fwdRFQ && !drop && ready != nil {
				ready()
			}
			switch {
			case cur.fwdRFQ && !drop:
				err = s.toClient(typ, body, true)
			case !hold:
				err = s.flushClient()
			case s.copyInOpen():
				// A COPY the shim runs failed while the client streams its data: it gets the
				// error now, as from PostgreSQL, and may stop sending (else it would only at its
				// CopyDone, or never for an endless source). For a COPY the shim runs,
				// copyInOpen holds up to this reply, past the client's CopyDone: the reply to an
				// extended COPY's request flushes what the client was sent for it so far, before
				// the shim's own statements run.
				err = s.flushClient()
			}
			s.mu.Lock()
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.status, s.statusSeq = body[0], cur.seq
			if body[0] == 'I' {
				s.idleSeq = cur.seq
			}
			if len(s.queue) == 0 && !s.copyPart {
				s.copyStarts, s.copyEnds = 0, 0
				s.copyChangedLocked()
			}
			if cur.notify != nil {
				close(cur.notify)
			}
			release := s.clientIdle && len(s.queue) == 0
			s.mu.Unlock()
			if release && err == nil {
				err = s.releaseNotes()
			}
			if capture {
				cur.r.status = body[0]
				cur.res <- cur.r
			}
			cur = nil
			if err != nil {
				return
			}
			continue
		case 'E':
			if cur != nil {
				cur.errSeen = true
			}
			if fwd && cur != nil && cur.shift > 0 {
				body = shiftPosition(body, cur.shift)
			}
			if cur == nil {
				loose = &pgproto3.ErrorResponse{}
				if loose.Decode(body) != nil {
					loose = nil
				}
				s.mu.Lock()
				if s.copyPart && !s.copyPartErr {
					s.copyPartErr = true
					if s.copyPartWake != nil {
						close(s.copyPartWake)
						s.copyPartWake = nil
					}
				}
				s.mu.Unlock()
			}
			if capture && cur.r.err == nil {
				e := &pgproto3.ErrorResponse{}
				if e.Decode(body) == nil {
					cur.r.err = e
				}
			}
			if capture && s.relayOn.Load() {
				s.noteRelayOutcome(cur, typ)
			}
		case 'C':
			if capture {
				cur.r.tag = string(bytes.TrimRight(body, "\x00"))
				if s.relayOn.Load() {
					s.noteRelayOutcome(cur, typ)
				}
			}
		case 'D':
			if capture && cur.r.row == nil {
				cur.r.row = decodeRow(body)
			}
		case 'N':
			switch {
			case cur != nil && cur.notices:
				fwd = true
			case cur != nil && (!cur.fwd || (cur.drop25001 && noticeCode(body) == "25001")):
				fwd = false
			}
		case 'A':
			// Notifications always reach the client where PostgreSQL may put them: just before
			// ReadyForQuery, or between replies when it waits for the next message outside a
			// transaction. One that comes in reply to a statement of the shim's own (its COMMIT)
			// waits for the next ReadyForQuery the client gets, after the replies the shim makes
			// up for the client's statement (CommandComplete COMMIT): it must not overtake them.
			// Later ones wait behind it, keeping their order.
			s.cmu.Lock()
			held := (cur != nil && !cur.fwd) || len(s.notes) > 0
			var herr error
			if held {
				herr = s.holdNoteLocked(typ, body)
			}
			s.cmu.Unlock()
			if herr != nil {
				s.cmu.Lock()
				writeFatal(s.cw, "53100", "tandem: cannot hold the session's notifications: "+herr.Error())
				s.cmu.Unlock()
				s.log.Warn("txshim: session ended", "user", s.user, "err", herr)
				return
			}
			if held {
				continue
			}
			fwd = true
		case 'S':
			fwd = true // parameter changes too, unless the session must end for one
			var ps pgproto3.ParameterStatus
			if ps.Decode(body) == nil {
				if ps.Name == "session_authorization" || ps.Name == "is_superuser" {
					if cur != nil && cur.quietAuth {
						authHeld[ps.Name] = ps.Value
						continue
					}
					_, switched := authHeld[ps.Name]
					delete(authHeld, ps.Name)
					if switched && ps.Value == told[ps.Name] {
						// The switch undone by an error after it (PostgreSQL reverts it at the
						// error, the shim's row failing): a value the client knows
						// (TestSessionAuthorizationDDLRowFailedParameterStatus).
						continue
					}
					told[ps.Name] = ps.Value
				}
				if ps.Name == "default_transaction_read_only" {
					s.mu.Lock()
					s.roValue = ps.Value
					s.roChanged = s.roChanged || cur == nil || cur.fwd
					s.mu.Unlock()
				}
				if ps.Name == "client_encoding" {
					s.mu.Lock()
					s.clientEnc = ps.Value
					s.mu.Unlock()
				}
				if ps.Name == "is_superuser" {
					s.mu.Lock()
					s.superuser = ps.Value == "on"
					s.mu.Unlock()
				}
				if why := lexerUnsafe(ps.Name, ps.Value); why != "" {
					// Before the ReadyForQuery that follows: no later request passes barrier.
					s.cmu.Lock()
					writeFatal(s.cw, "0A000", "tandem: "+why)
					s.cmu.Unlock()
					s.log.Warn("txshim: session ended", "user", s.user, "reason", why)
					return
				}
			}
		case 'G':
			if fwd {
				// Noted open before the client has it: the client's answer (CopyData, and
				// Flush or Sync that then belong to the COPY) may reach clientLoop at once.
				s.mu.Lock()
				s.copyStarts++
				s.copyChangedLocked()
				s.mu.Unlock()
				if err := s.toClient(typ, body, true); err != nil {
					return
				}
				if copyIn := s.shim.hooks.copyIn.get(); copyIn != nil {
					copyIn()
				}
			}
			if capture {
				cur.res <- result{copyIn: true}
			}
			continue
		}
		if fwd && cur != nil && cur.holdTag && (typ == 'C' || (typ == 'S' && cur.r.held != nil)) {
			if typ == 'C' {
				cur.r.held = cur.r.held[:0]
			}
			cur.r.held = append(cur.r.held, heldMsg{typ, append([]byte(nil), body...)})
			continue
		}
		// A notification waits behind the replies held before it, in its place (PostgreSQL sends
		// it only while no transaction is open: never among the BEGIN's replies).
		if fwd && cur != nil && cur.ownBegin && (typ != 'A' || len(cur.held) > 0) {
			cur.held = append(cur.held, heldMsg{typ, append([]byte(nil), body...)})
			if len(cur.held) > len(ownBeginTail) && typ != 'S' {
				// A ParameterStatus may follow the BEGIN's replies (ownBeginReplies): the
				// messages before it stay held.
				m := cur.held[0]
				cur.held = cur.held[1:]
				if err := s.toClient(m.typ, m.body, false); err != nil {
					return
				}
			}
			continue
		}
		if fwd {
			// An error that ends a COPY FROM STDIN (copyInOpen: while the client streams its
			// data, or at its CopyDone) goes out at once, as PostgreSQL flushes every error,
			// though the shim makes the request's ReadyForQuery (an extended COPY's comes only
			// after the client's next Sync): TestExtCopyErrorSentAtOnce,
			// TestExtCopyEndErrorSentAtOnce. So does what answers a Flush after an extended
			// COPY's end (copyFlush).
			flush := (!hold || typ == 'E' && s.copyInOpen() || s.copyFlush.Load()) && s.br.r.Buffered() == 0
			if err := s.toClient(typ, body, flush); err != nil {
				return
			}
		}
	}
}

// ownBeginTail is the replies to sendBegin's messages when they all ran: ParseComplete,
// BindComplete, the warning 25001 when a transaction block was open already, CommandComplete,
// CloseComplete twice.
const ownBeginTail = "12NC33"

// ownBeginReplies returns the messages in held that are not replies to the shim's BEGIN
// (sendBegin), in order, and how many are, 0 when it did not run. Each of its messages is
// answered, or an error ends the request: when it ran, its replies are the last before
// ReadyForQuery but for ParameterStatus, which PostgreSQL (≥ 14) sends for the settings changed
// since the last ReadyForQuery right before the next one (a DISCARD ALL or SET in the part
// before the BEGIN); when it did not, an error came before, after which PostgreSQL sends
// nothing until ReadyForQuery but those (and one a rollback reports).
func ownBeginReplies(held []heldMsg) ([]heldMsg, int) {
	end := len(held)
	for end > 0 && held[end-1].typ == 'S' {
		end--
	}
	for _, want := range []string{ownBeginTail, "12C33"} {
		if end < len(want) {
			continue
		}
		tail := held[end-len(want) : end]
		ok := true
		for i, m := range tail {
			switch {
			case m.typ != want[i]:
				ok = false
			case m.typ == 'C' && string(m.body) != "BEGIN\x00":
				ok = false
			case m.typ == 'N' && noticeCode(m.body) != "25001":
				ok = false
			}
		}
		if ok {
			return append(held[:end-len(want):end-len(want)], held[end:]...), len(want)
		}
	}
	return held, 0
}

func decodeRow(body []byte) [][]byte {
	var dr pgproto3.DataRow
	if dr.Decode(body) != nil {
		return [][]byte{}
	}
	row := make([][]byte, len(dr.Values))
	for i, v := range dr.Values {
		if v != nil {
			row[i] = append([]byte{}, v...)
		}
	}
	return row
}

// noticeCode returns the SQLSTATE of a NoticeResponse/ErrorResponse body.
func noticeCode(body []byte) string {
	for len(body) > 1 && body[0] != 0 {
		f := body[0]
		end := bytes.IndexByte(body[1:], 0)
		if end < 0 {
			return ""
		}
		if f == 'C' {
			return string(body[1 : 1+end])
		}
		body = body[2+end:]
	}
	return ""
}

// toClient writes one message to the client, flushing when asked.
func (s *session) toClient(typ byte, body []byte, flush bool) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if typ == 'Z' {
		if err := s.writeNotesLocked(); err != nil {
			return err
		}
		s.writeParamsLocked()
	}
	if typ == 'S' && s.tagHeld != nil {
		s.tagHeld = append(s.tagHeld, heldMsg{typ, append([]byte(nil), body...)})
		if flush {
			return s.cw.Flush()
		}
		return nil
	}
	if typ == 'S' && s.told != nil {
		s.params = append(s.params, heldMsg{typ, append([]byte(nil), body...)})
		if flush {
			return s.cw.Flush()
		}
		return nil
	}
	writeHeader(s.cw, typ, len(body))
	if _, err := s.cw.Write(body); err != nil {
		return err
	}
	if flush {
		return s.cw.Flush()
	}
	return nil
}

// writeHeader buffers the header (type byte and length) of a message whose body is n bytes,
// in w's own free space: a header array handed to Write would be allocated for every message.
// An error stays in w, for the Write or Flush after it to return.
func writeHeader(w *bufio.Writer, typ byte, n int) {
	w.Write(binary.BigEndian.AppendUint32(append(w.AvailableBuffer(), typ), uint32(n+4)))
}

// maxHeldNotes bounds the notifications a session holds in memory (notes); more go to a file
// (notesFile).
const maxHeldNotes = 1 << 20

// holdNoteLocked holds a notification for the client's next ReadyForQuery: in notes, or past
// maxHeldNotes in notesFile. s.cmu is held.
func (s *session) holdNoteLocked(typ byte, body []byte) error {
	if s.notesFile == nil && len(s.notes) < maxHeldNotes {
		s.notes = binary.BigEndian.AppendUint32(append(s.notes, typ), uint32(len(body)+4))
		s.notes = append(s.notes, body...)
		return nil
	}
	if s.notesFile == nil {
		f, err := os.CreateTemp("", "tandem-notes-*")
		if err != nil {
			return err
		}
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return err
		}
		s.notesFile, s.notesW = f, bufio.NewWriterSize(f, 64<<10)
	}
	writeHeader(s.notesW, typ, len(body))
	_, err := s.notesW.Write(body)
	return err
}

// writeNotesLocked writes the notifications held for the client's next ReadyForQuery (notes,
// then notesFile), which is written next. s.cmu is held.
func (s *session) writeNotesLocked() error {
	if len(s.notes) > 0 {
		s.cw.Write(s.notes)
		s.notes = s.notes[:0]
		if cap(s.notes) > 2*maxHeldNotes {
			s.notes = nil
		}
	}
	if s.notesFile == nil {
		return nil
	}
	f := s.notesFile
	err := s.notesW.Flush()
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err == nil {
		_, err = io.Copy(s.cw, f)
	}
	f.Close()
	s.notesFile, s.notesW = nil, nil
	if err != nil {
		// The client would miss notifications: the session ends.
		s.client.Close()
		return fmt.Errorf("notifications held for the client: %w", err)
	}
	return nil
}

// dropNotes closes the file of held notifications, once the session's loops are done.
func (s *session) dropNotes() {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.notesFile != nil {
		s.notesFile.Close()
		s.notesFile, s.notesW = nil, nil
	}
}

// writeParamsLocked buffers, just before a ReadyForQuery, the ParameterStatus messages held
// since the last one (params): for each parameter its last value, unless the client was told
// that value last, as PostgreSQL reports them (under cmu).
func (s *session) writeParamsLocked() {
	if len(s.params) == 0 {
		return
	}
	last := make(map[string]int, len(s.params))
	values := make([]pgproto3.ParameterStatus, len(s.params))
	for i, m := range s.params {
		if values[i].Decode(m.body) == nil {
			last[values[i].Name] = i
		}
	}
	for i, m := range s.params {
		ps := values[i]
		if j, ok := last[ps.Name]; ok && (j != i || s.told[ps.Name] == ps.Value) {
			continue
		}
		if ps.Name != "" {
			s.told[ps.Name] = ps.Value
		}
		writeHeader(s.cw, m.typ, len(m.body))
		s.cw.Write(m.body)
	}
	s.params = s.params[:0]
}

// releaseNotes sends the client the notifications held (notes) while it waits idle with
// nothing in flight: PostgreSQL delivers a notification to an idle session at once.
func (s *session) releaseNotes() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if len(s.notes) == 0 {
		return nil
	}
	if err := s.writeNotesLocked(); err != nil {
		return err
	}
	return s.cw.Flush()
}

func (s *session) flushClient() error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.cw.Flush()
}

// emit buffers messages the shim makes up for the client; emitRFQ, and clientLoop before it
// waits for the client, flush them. Only clientLoop calls it, when the replies before them have
// been relayed.
func (s *session) emit(msgs ...pgproto3.BackendMessage) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, m := range msgs {
		if _, ok := m.(*pgproto3.ReadyForQuery); ok {
			if err := s.writeNotesLocked(); err != nil {
				return err
			}
			s.writeParamsLocked()
		}
		buf, err := m.Encode(s.scratch[:0])
		if err != nil {
			return err
		}
		s.scratch = buf
		if _, err := s.cw.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// emitHeld sends the replies serverLoop held back (pending.holdTag) and the ParameterStatus
// messages relayed since they were (tagHeld): the CommandComplete only when complete, the
// ParameterStatus messages always.
func (s *session) emitHeld(held []heldMsg, complete bool) error {
	s.cmu.Lock()
	held = append(held, s.tagHeld...)
	s.tagHeld = nil
	s.cmu.Unlock()
	for _, m := range held {
		if m.typ == 'C' && !complete {
			continue
		}
		if err := s.toClient(m.typ, m.body, false); err != nil {
			return err
		}
	}
	return nil
}

// emitError sends an ERROR (not FATAL) to the client.
func (s *session) emitError(code, msg string) error {
	return s.emit(&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg})
}

func (s *session) emitRFQ(st byte) error {
	if s.skipRFQ {
		s.skipRFQ = false
		return s.flushClient()
	}
	if err := s.emit(&pgproto3.ReadyForQuery{TxStatus: st}); err != nil {
		return err
	}
	return s.flushClient()
}

// forward writes one client message to the backend unchanged.
func (s *session) forward(typ byte, body []byte, flush bool) error {
	writeHeader(s.bw, typ, len(body))
	if _, err := s.bw.Write(body); err != nil {
		return err
	}
	if flush {
		return s.bw.Flush()
	}
	return nil
}

// push queues an entry; it must precede the write of its request.
func (s *session) push(p *pending) {
	s.mu.Lock()
	s.pushLocked(p)
	s.mu.Unlock()
}

// pushLocked is push, s.mu held.
func (s *session) pushLocked(p *pending) {
	p.mayWrite = !s.roForced || s.partWriteLocked()
	s.pushSeq++
	p.seq = s.pushSeq
	s.queue = append(s.queue, p)
}

// sendQuery writes a simple Query of the shim's own, queued as p; flush=false pipelines it.
func (s *session) sendQuery(q string, p *pending, flush bool) error {
	s.push(p)
	writeHeader(s.bw, 'Q', len(q)+1)
	s.bw.WriteString(q)
	if err := s.bw.WriteByte(0); err != nil {
		return err
	}
	if flush {
		return s.bw.Flush()
	}
	return nil
}

// ownName names the prepared statement and portal of the shim's own statements.
const ownName = "tandem_shim_internal"

// sendOwn writes a statement of the shim's own, queued as p; flush=false pipelines it. It uses
// the extended protocol with a named statement and portal: a simple Query would destroy the
// client's unnamed prepared statement, which clients such as lib/pq parse in one request and
// bind in the next.
func (s *session) sendOwn(q string, p *pending, flush bool, args ...string) error {
	return s.sendStmt(p, ownName, q, true, flush, args)
}

// sendStmt queues p and writes the messages that run q as the prepared statement stmt (parsed
// first when parse, replacing one of that name) through the portal ownName, and a Sync.
func (s *session) sendStmt(p *pending, stmt, q string, parse, flush bool, args []string) error {
	s.push(p)
	var params [][]byte
	for _, a := range args {
		params = append(params, []byte(a))
	}
	buf := s.scratchOwn[:0]
	buf, _ = (&pgproto3.Close{ObjectType: 'P', Name: ownName}).Encode(buf)
	if parse {
		buf, _ = (&pgproto3.Close{ObjectType: 'S', Name: stmt}).Encode(buf)
		buf, _ = (&pgproto3.Parse{Name: stmt, Query: q}).Encode(buf)
	}
	buf, _ = (&pgproto3.Bind{DestinationPortal: ownName, PreparedStatement: stmt, Parameters: params}).Encode(buf)
	buf, _ = (&pgproto3.Execute{Portal: ownName}).Encode(buf)
	buf, _ = (&pgproto3.Sync{}).Encode(buf)
	s.scratchOwn = buf
	if _, err := s.bw.Write(buf); err != nil {
		return err
	}
	if flush {
		return s.bw.Flush()
	}
	return nil
}

// keptPrefix begins the names of the statements sendKept keeps prepared on a session's backend.
const keptPrefix = "tandem_shim_kept_"

// sendKept is sendOwn for a statement the shim runs on every commit (the commit check): parsed
// once per session and kept prepared on its backend, so that PostgreSQL does not parse and plan
// it again each time (measured: ~75 µs of the backend's CPU per commit, bench/README). The
// session forgets its kept statements — sendKept parses them again — when the client may have
// ended them (DEALLOCATE ALL, DISCARD ALL: forgetKeptFor; the client's names never are the
// shim's: clientNames, reservedNameRefusal) and after any error of one, or when one did not run. A DEALLOCATE the shim
// cannot see, run by a function, makes the next check fail: that transaction is rolled back
// with an error, and the one after it parses the check again — and so do all later ones of
// that session (keepOff).
func (s *session) sendKept(q string, p *pending, flush bool, args ...string) error {
	if s.keepOff {
		return s.sendOwn(q, p, flush, args...)
	}
	name, ok := s.kept[q]
	if !ok {
		if s.kept == nil {
			s.kept = make(map[string]string)
		}
		name = keptPrefix + strconv.Itoa(len(s.kept)+1)
		s.kept[q] = name
	}
	p.kept = true
	// A statement of this name left from before the session forgot it is replaced.
	return s.sendStmt(p, name, q, !ok, flush, args)
}

// forgetKeptFor makes the session forget its kept statements (sendKept) when op may end one
// of them or take its name.
func (s *session) forgetKeptFor(op namesOp) {
	if op.op == 'A' || (op.op != 0 && strings.HasPrefix(op.name, keptPrefix)) {
		s.kept = nil
	}
}

// beginName names the statement and portal of sendBegin, closed in the same request: its Parse,
// the first message, never meets one left over.
const beginName = "tandem_shim_begin"

// sendBegin writes the shim's BEGIN, queued as p (ownBegin), behind a part of the client's
// request sent unanswered: it makes an implicit transaction the part runs in an explicit block,
// which the Sync that ends it does not end. Its first message is the only one that can fail (in
// an aborted block), so that no reply of its own comes before an error.
func (s *session) sendBegin(p *pending) error {
	s.push(p)
	return s.writeBegin()
}

// writeBegin writes sendBegin's messages, for an entry queued already.
func (s *session) writeBegin() error {
	buf := s.scratchOwn[:0]
	buf, _ = (&pgproto3.Parse{Name: beginName, Query: "BEGIN"}).Encode(buf)
	buf, _ = (&pgproto3.Bind{DestinationPortal: beginName, PreparedStatement: beginName}).Encode(buf)
	buf, _ = (&pgproto3.Execute{Portal: beginName}).Encode(buf)
	buf, _ = (&pgproto3.Close{ObjectType: 'P', Name: beginName}).Encode(buf)
	buf, _ = (&pgproto3.Close{ObjectType: 'S', Name: beginName}).Encode(buf)
	buf, _ = (&pgproto3.Sync{}).Encode(buf)
	s.scratchOwn = buf
	_, err := s.bw.Write(buf)
	return err
}

// capture runs one statement of the shim's own and returns its result; nothing reaches the
// client but notifications and parameter changes.
func (s *session) capture(q string, args ...string) (result, error) {
	p := &pending{res: make(chan result, 1)}
	if err := s.sendOwn(q, p, true, args...); err != nil {
		return result{}, err
	}
	return s.wait(p)
}

// swallow pipelines a statement of the shim's own whose reply nobody needs (BEGIN, SET).
func (s *session) swallow(q string) error {
	return s.sendOwn(q, &pending{}, false)
}

// sendAuth pipelines asSessionUserSQL or roleBackSQL (end: the latter), whose reports of the
// switch the client does not hear (pending.quietAuth); its result comes on the entry's res: a
// cancel of the client's (or its statement_timeout) landing on it is the error the client
// must hear, not the 25P02 of the statements after it in the transaction it aborted
// (TestSessionAuthorizationDDLSwitchCancelled).
func (s *session) sendAuth(q string, end bool) (*pending, error) {
	p := &pending{res: make(chan result, 1), quietAuth: true, quietAuthEnd: end}
	return p, s.sendOwn(s.viaStepHook(q), p, false)
}

// wait waits for p's result, relaying the client's COPY data when the request started a
// COPY FROM STDIN.
func (s *session) wait(p *pending) (result, error) {
	if err := s.bw.Flush(); err != nil {
		return result{}, err
	}
	for {
		select {
		case r := <-p.res:
			if r.copyIn {
				if err := s.relayCopyIn(p); err != nil {
					return result{}, err
				}
				continue
			}
			if r.rfqPassed {
				s.skipRFQ = true
			}
			// The copyMark queued for the client's Syncs during the request's COPY goes once
			// the request is answered: not at a COPY's end, after which the request may open
			// another COPY, whose copy-in its Close would end the session in
			// (TestWrappedCopyMidSyncTwoCopies). Its entry, queued at the first Sync, takes the
			// backend's answers to them meanwhile.
			if err := s.writeMarked(); err != nil {
				return result{}, err
			}
			// No CommandComplete: PostgreSQL skipped the statement (and its Parse) after an
			// error before it in the request.
			if p.kept && (r.err != nil || r.tag == "") {
				s.kept = nil
				if r.err != nil && r.err.Code == "26000" && !s.keepOff {
					// Ended by something the shim did not see, and may be again: a function
					// the client calls in every transaction would fail every other commit.
					s.keepOff = true
					s.log.Warn("txshim: a statement the shim keeps prepared on the session's backend (its commit check, or its idle_session_timeout guard) was deallocated by something the shim did not see (a function running DEALLOCATE?); it failed this once (a failed check rolls its commit back), and this session's are parsed each time from now on")
				}
			}
			return r, nil
		case <-s.done:
			return result{}, errBackendGone
		}
	}
}

// copyRelay is a COPY FROM STDIN the shim runs whose data relayCopyIn relays (session.relay).
type copyRelay struct {
	p *pending // the entry whose request runs the COPY
	// status: the status the ReadyForQuery messages PostgreSQL sends once the COPY failed
	// carry, 0 for the backend's: 'I' for a COPY in the shim's block (unitState.injected),
	// which PostgreSQL runs in its implicit transaction.
	status byte
	// ended: the client's end of the COPY (CopyDone or CopyFail, and an extended COPY's Sync
	// after it) is written, or about to be: a ReadyForQuery of p may answer it.
	ended bool
	// passed: serverLoop passed p's ReadyForQuery to the client, before the COPY's end: the
	// COPY failed, and PostgreSQL takes what the client sends next as any message outside a
	// COPY.
	passed bool
	// outcome: the first CommandComplete ('C') or ErrorResponse ('E') serverLoop read for p
	// since the relay began, 0 before; settled, made by copyFailed, is closed once it is set.
	outcome byte
	settled chan struct{}
}

// relayCopyIn passes the client's CopyData through until CopyDone or CopyFail (and, for an
// extended-protocol COPY, the Sync that follows), for the COPY of p's request. Once the COPY
// failed and the client has the ReadyForQuery PostgreSQL sends then (copyRelay.passed), the
// relay ends at the client's next message, which clientLoop takes as any other.
func (s *session) relayCopyIn(p *pending) error {
	rl := &copyRelay{p: p}
	if s.walking != nil && s.walking.injected {
		rl.status = 'I'
	}
	s.mu.Lock()
	s.relay = rl
	s.mu.Unlock()
	s.relayOn.Store(true)
	defer func() {
		s.relayOn.Store(false)
		s.mu.Lock()
		s.relay = nil
		s.mu.Unlock()
	}()
	for {
		typ, body, err := s.cr.next()
		if err != nil {
			return err
		}
		s.mu.Lock()
		passed := rl.passed
		s.mu.Unlock()
		if passed {
			// Data, a CopyDone or CopyFail then goes through clientLoop to the backend, which
			// ignores it, and a Sync gets its ReadyForQuery as from PostgreSQL: the next
			// request (TestWrappedExtCopyQueryAfterFailure).
			s.cr.unread(typ, body)
			return nil
		}
		switch typ {
		case 'd':
			if err := s.forward(typ, body, s.cr.r.Buffered() == 0); err != nil {
				return err
			}
		case 'c', 'f':
			// Sent on at once unless the client's Sync (or more) follows: the backend fails a
			// bad last row (one without its newline) at the CopyDone, and PostgreSQL sends that
			// error at once (TestExtCopyEndErrorSentAtOnce).
			if !s.lastExt {
				s.relayEnding()
			}
			if err := s.forward(typ, body, !s.lastExt || s.cr.r.Buffered() == 0); err != nil {
				return err
			}
			if !s.lastExt {
				return nil
			}
			return s.relayUntilSync()
		case 'H', 'S':
			// Ignored by the backend during copy-in. But once a bad row ended the COPY,
			// PostgreSQL answers each Sync with a ReadyForQuery — an extended COPY's first the
			// request's — and a client that counts them waits for them all
			// (TestWrappedExtCopyMidSyncReplies, TestWrappedCopyAnsweredAtOnce): they pass,
			// and the shim's copyMark, queued now and sent once the request is answered
			// (writeMarked), tells the backend's answers to them from the replies to what
			// follows, its own ROLLBACK's (TestExtCopyMidSyncAfterError,
			// TestSyncDuringFailedCopy). A Flush passes for an
			// extended COPY only. Either way the data before it goes on to the backend unless
			// more follows at once: held, a bad row's error would wait for the client's next
			// message (TestCopyDataFlushedAtClientFlush).
			flush := s.cr.r.Buffered() == 0
			if typ == 'S' && s.copyMarked == nil {
				s.copyMarked = &pending{copyMark: true, markStatus: rl.status}
				s.push(s.copyMarked)
			}
			if !s.lastExt && typ == 'H' {
				if flush {
					if err := s.bw.Flush(); err != nil {
						return err
					}
				}
				continue
			}
			if err := s.forward(typ, body, flush); err != nil {
				return err
			}
		case 'X':
			// The client leaves mid-COPY: the backend answers no more (an extended COPY waits
			// for a Sync that will not come), so the session ends here, as on any Terminate.
			s.forward(typ, body, true)
			return errClientQuitCopy
		default:
			// Anything else aborts the COPY in the backend, which answers at once to a simple
			// Query's COPY; an extended one it skips then until the client's next Sync, so the
			// client is read on until that (or until it leaves).
			if !s.lastExt {
				s.relayEnding()
			}
			if err := s.forward(typ, body, !s.lastExt); err != nil {
				return err
			}
			if !s.lastExt {
				return nil
			}
			return s.relayUntilSync()
		}
	}
}

// relayEnding notes the client's end of the relayed COPY, before it is written
// (copyRelay.ended).
func (s *session) relayEnding() {
	s.mu.Lock()
	if s.relay != nil {
		s.relay.ended = true
	}
	s.mu.Unlock()
}

// writeMarked writes the copyMark relayCopyIn queued for the client's Syncs during the COPY
// (copyMarked), if any, once the COPY's request is answered (wait).
func (s *session) writeMarked() error {
	if s.copyMarked == nil {
		return nil
	}
	s.copyMarked = nil
	return s.writeCopyMark()
}

// relayUntilSync passes the client's messages through up to and including the next Sync: the
// end of an extended-protocol COPY, which the backend answers only then.
func (s *session) relayUntilSync() error {
	defer s.copyFlush.Store(false)
	// dropping: the COPY failed, and the backend skips the client's messages up to its Sync.
	dropping := false
	// read: plainReadAfterCopy's progress through a plain SELECT's Parse, Bind and Execute.
	read := 0
	for {
		typ, body, err := s.cr.next()
		if err != nil {
			return err
		}
		if us := s.walking; !dropping && !relayedAfterCopy(typ) && us != nil && us.copyGoesOn {
			// More of the COPY's request: PostgreSQL, which ignored the client's Sync during
			// the data, runs it in the COPY's transaction. After a COPY that ended well the
			// shim's Sync ends the COPY's Execute in the shim's block, which it does not end,
			// and the rest goes to the walk as the request's next part, checked as any, its
			// writes in the COPY's dual commit (TestWrappedExtCopyDoneThenExtWrite); a simple
			// Query is walked in the block and commits it at its end (queryInRequest,
			// TestWrappedExtCopyDoneThenQuery), as a FunctionCall runs there (callInRequest,
			// TestCopyDoneThenFunctionCall).
			failed, err := s.copyFailed()
			if err != nil {
				return err
			}
			if !failed {
				us.wentOn = true
				s.cr.unread(typ, body)
				s.relayEnding()
				return s.forward('S', nil, true)
			}
		}
		if !dropping && !relayedAfterCopy(typ) && !s.plainReadAfterCopy(typ, body, &read) {
			// PostgreSQL runs it in the COPY's implicit transaction and commits both at its
			// end; relayed into the shim's block, a Query's ReadyForQuery was taken for the
			// COPY's, and the shim's commit at the client's next Sync failed, its own replies
			// reaching the client (TestWrappedExtCopyDoneThenQuery); a Parse/Bind/Execute ran
			// past the shim's checks: DDL unrecorded in tandem.ddl, so never on the peer, and
			// what the shim refuses (TestExtCopyDoneThenExtRequest). Where the request cannot
			// go on in a block as above (a COPY in the request's implicit
			// transaction, after a procedure), walking them as part of the COPY's request is not supported
			// (but for a plain SELECT of the unnamed statement, plainReadAfterCopy): the
			// session ends before any of it reaches the backend, which rolls the COPY back.
			// But after a COPY that failed,
			// PostgreSQL skips it and all else up to the Sync, as the shim does
			// (TestWrappedExtCopyFailedThenQuery).
			failed, err := s.copyFailed()
			if err != nil {
				return err
			}
			if !failed {
				return &protocolError{fmt.Sprintf("message type %q between the CopyDone and the Sync of an extended-protocol COPY FROM STDIN is not supported", typ)}
			}
			dropping = true
		}
		if dropping && typ != 'H' && typ != 'S' && typ != 'X' {
			continue
		}
		if typ == 'H' {
			s.copyFlush.Store(true)
		}
		if typ == 'S' {
			// Before it is written: a ReadyForQuery read after this may answer it.
			s.relayEnding()
		}
		if err := s.forward(typ, body, true); err != nil {
			return err
		}
		if typ == 'S' {
			return nil
		}
	}
}

// relayedAfterCopy tells whether relayUntilSync may pass the client's message of type typ to
// the backend between an extended COPY's CopyDone and its Sync: a Flush, the Sync, a
// Terminate, or COPY messages the backend ignores outside a COPY. Anything else (Parse, Bind,
// Describe, Execute, Close, Query, FunctionCall) would run unseen by the shim.
func relayedAfterCopy(typ byte) bool {
	switch typ {
	case 'H', 'S', 'X', 'd', 'c', 'f':
		return true
	}
	return false
}

// plainReadAfterCopy tells whether relayUntilSync may pass a message of an extended request
// between an extended COPY's CopyDone and its Sync, which the shim does not walk: only the
// Parse of the unnamed statement as one plain SELECT (no calls, no INTO), then its Bind to the
// unnamed portal, Describes and Executes of that, where the request cannot go on in a block
// (unitState.copyGoesOn unset). It runs in the COPY's transaction and changes nothing the shim
// must see; anything else ends the session. read is the progress: 1 after the Parse, 2
// after the Bind.
func (s *session) plainReadAfterCopy(typ byte, body []byte, read *int) bool {
	switch typ {
	case 'P':
		name, rest, ok := cString(body)
		query, _, ok2 := cString(rest)
		if !ok || !ok2 || name != "" {
			return false
		}
		for _, st := range splitStatements(query) {
			// Before lex, which notes the functions DDL creates.
			if st.Kind != kindEmpty && st.Kind != kindRead {
				return false
			}
		}
		n := 0
		for _, st := range s.lex(query) {
			if st.Kind == kindEmpty {
				continue
			}
			text := strings.ToLower(strings.TrimSpace(query[st.Start:st.End]))
			if n++; n > 1 || st.Kind != kindRead || len(st.Calls) != 0 || st.ManyCalls ||
				!strings.HasPrefix(text, "select") || strings.Contains(text, "into") {
				return false
			}
		}
		if n != 1 {
			return false
		}
		*read = 1
		return true
	case 'B':
		portal, rest, ok := cString(body)
		stmt, _, ok2 := cString(rest)
		if !ok || !ok2 || portal != "" || stmt != "" || *read < 1 {
			return false
		}
		*read = 2
		return true
	case 'D':
		if len(body) < 2 {
			return false
		}
		name, _, ok := cString(body[1:])
		return ok && name == "" && (body[0] == 'S' && *read >= 1 || body[0] == 'P' && *read >= 2)
	case 'E':
		portal, _, ok := cString(body)
		return ok && portal == "" && *read >= 2
	}
	return false
}

// copyFailed tells, during relayUntilSync, whether the relayed COPY failed: once its request's
// first CommandComplete or error after the data is read (a Flush of the shim's sends it),
// copyRelay.outcome.
func (s *session) copyFailed() (bool, error) {
	s.mu.Lock()
	rl := s.relay
	if rl == nil {
		s.mu.Unlock()
		return false, nil
	}
	if rl.settled == nil {
		rl.settled = make(chan struct{})
		if rl.outcome != 0 {
			close(rl.settled)
		}
	}
	ch := rl.settled
	s.mu.Unlock()
	writeHeader(s.bw, 'H', 0)
	if err := s.bw.Flush(); err != nil {
		return false, err
	}
	select {
	case <-ch:
	case <-s.done:
		return false, errBackendGone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return rl.outcome == 'E', nil
}

// noteRelayOutcome sets copyRelay.outcome at cur's CommandComplete or error (typ), if cur's
// request runs the COPY relayed and none was noted.
func (s *session) noteRelayOutcome(cur *pending, typ byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rl := s.relay; rl != nil && rl.p == cur && rl.outcome == 0 {
		rl.outcome = typ
		if rl.settled != nil {
			close(rl.settled)
		}
	}
}

// barrier waits until every request in flight is answered and returns the exact status.
func (s *session) barrier() (byte, error) {
	s.mu.Lock()
	if len(s.queue) == 0 {
		st := s.status
		s.mu.Unlock()
		return st, nil
	}
	if s.copyStarts > s.copyEnds {
		s.mu.Unlock()
		return 0, errCopyOpen
	}
	last := s.queue[len(s.queue)-1]
	if last.notify == nil {
		last.notify = make(chan struct{})
	}
	ch, opened := last.notify, s.copyOpen
	s.mu.Unlock()
	if err := s.bw.Flush(); err != nil {
		return 0, err
	}
	select {
	case <-ch:
	case <-opened:
		// A request in flight opened a COPY FROM STDIN: it waits for the client's data, which
		// this one is not.
		return 0, errCopyOpen
	case <-s.done:
		return 0, errBackendGone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status, nil
}

// errCopyOpen: the backend is in a COPY FROM STDIN a passed-through request started (barrier).
var errCopyOpen = errors.New("a COPY FROM STDIN is open")

// copyMessage notes a CopyDone or CopyFail from the client and reports whether a COPY FROM
// STDIN that a passed-through request started is open.
func (s *session) copyMessage(typ byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if (typ == 'c' || typ == 'f') && (len(s.queue) > 0 || s.copyPart) {
		s.copyEnds++
		s.copyChangedLocked()
	}
	return s.copyStarts > s.copyEnds
}

// copyHeld tells whether an Execute of COPY FROM STDIN is among the extended-protocol messages
// held for their Sync, not skipped after an error.
func (s *session) copyHeld() bool {
	if s.unit.skipping {
		return false
	}
	for _, it := range s.items {
		if it.typ == 'E' && it.info.copyIn {
			return true
		}
	}
	return false
}

// copyInOpen tells whether the client was handed a CopyInResponse and the COPY is not over:
// for a passed-through COPY, until the client's CopyDone or CopyFail (copyMessage); for one the
// shim runs (relayCopyIn, which counts no end), until the reply that empties the queue — the
// request's ReadyForQuery, past the client's CopyDone, so that an error the backend raises at
// that CopyDone (a bad last row without its newline) goes out at once too
// (TestExtCopyEndErrorSentAtOnce).
func (s *session) copyInOpen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copyStarts > s.copyEnds
}

// notePartWrite notes a part of the open extended request sent unanswered, steps [lo, hi) of u
// run from status st (0: not known), after which unitState.pipelined holds, or that runs a
// procedure (partWrite): while the mode takes writes, an Execute ran in the implicit transaction
// the part leaves open, or a procedure that commits by itself (counted in the commit gate too,
// procGate, but a Drain's end must find the session), unless the part leaves a transaction
// block (a status not known counts as none, unless nothing is in flight and the session is in
// one).
func (s *session) notePartWrite(u unit, lo, hi int, st byte) {
	if s.roForced || !s.unit.pipelined && !hasProc(u, lo, hi) {
		return
	}
	if after := statusAfter(u, lo, hi, st); after == 'T' || after == 'E' {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == 0 && statusAfter(u, lo, hi, 0) == 0 {
		if len(s.queue) == 0 && (s.status == 'T' || s.status == 'E') {
			return
		}
		if len(s.queue) > 0 && (!s.partWrite || s.partUnsure == s.pushSeq) {
			// Pipelined behind a request not answered yet (a BEGIN and its Sync): its reply
			// tells (TestDrainPartPipelinedBlock).
			s.partWrite, s.partUnsure = true, s.pushSeq
			return
		}
	}
	s.partWrite, s.partUnsure = true, 0
}

// partWriteLocked tells whether partWrite holds: unless the part was sent behind an entry not
// answered then (partUnsure), that entry is the last answered, and it left a transaction block.
// s.mu must be held.
func (s *session) partWriteLocked() bool {
	if !s.partWrite {
		return false
	}
	if s.partUnsure == 0 || s.statusSeq != s.partUnsure {
		return true
	}
	return s.status != 'T' && s.status != 'E'
}

// noteCopyPart notes a part of steps [lo, hi) of u sent unanswered (copyPart); injected: in
// the shim's block (copyPartStatus); st: the status before the part, 0 if not known
// (copyPartImplicit: neither injected nor in a block at its first COPY).
func (s *session) noteCopyPart(u unit, lo, hi int, injected bool, st byte) {
	if hasCopyIn(u, lo, hi) {
		k := lo
		for !u.info(k).copyIn {
			k++
		}
		at := statusAfter(u, lo, k, st)
		s.mu.Lock()
		s.copyPart, s.copyPartErr = true, false
		s.copyPartImplicit = !injected && at == 'I'
		if injected {
			s.copyPartStatus = 'I'
		}
		s.mu.Unlock()
	}
}

// copyChangedLocked keeps copyOpen closed exactly while a passed-through COPY is open.
func (s *session) copyChangedLocked() {
	open := s.copyStarts > s.copyEnds
	select {
	case <-s.copyOpen:
		if !open {
			s.copyOpen = make(chan struct{})
		}
	default:
		if open {
			close(s.copyOpen)
		}
	}
}

// abortCopy sends the held extended-protocol messages and then the message typ/body straight
// to a backend in COPY FROM STDIN, as a client connected to PostgreSQL itself would have: the
// backend fails the COPY, and as it cannot skip the message, ends the session.
func (s *session) abortCopy(typ byte, body []byte) error {
	s.bw.Write(s.ebuf)
	s.ebuf, s.items = s.ebuf[:0], s.items[:0]
	return s.forward(typ, body, true)
}

func (s *session) policy() policy { return policyFor(*s.shim.mode.Load()) }

// startUnit runs what a request that begins outside a transaction needs under pol: fencing
// refuses it; read-only modes switch default_transaction_read_only. It reports whether the
// request was refused (the error is already sent).
func (s *session) startUnit(pol policy, final bool) (bool, error) {
	s.txUnprep, s.txWrote, s.txHold = false, false, false
	if pol.fenced {
		if err := s.emitError("57P03", "tandem: "+pol.fencedMessage("no new transactions")); err != nil {
			return true, err
		}
		if final {
			return true, s.emitRFQ('I')
		}
		s.unit = unitState{open: true, skipping: true, st: 'I'}
		return true, nil
	}
	if s.readOnlyChange(pol) {
		s.readOnlySet = pol.readOnly
		if pol.readOnly {
			return false, s.forceReadOnly()
		}
		return false, s.releaseReadOnly()
	}
	return false, nil
}

// readOnlyChange reports whether the session's default_transaction_read_only must change for
// pol: put on for read-only modes, given back to the client's own value for the others.
//
// In read-only modes the setting must be on whenever a transaction of the client's begins
// outside the shim's own BEGIN: a statement the lexer takes for a read runs unwrapped, and
// some that PostgreSQL allows only in a read-write transaction write (nextval, setval,
// lo_create). So it is put on again when a statement that may have changed it was sent since
// (readOnlySet, cleared by note) — which the shim learns as it sends the statement, before a
// request pipelined behind it, and on servers before PostgreSQL 14, which do not report the
// setting — or when the database reported it off since (a function that sets it).
func (s *session) readOnlyChange(pol policy) bool {
	if !pol.readOnly {
		return s.roForced
	}
	if !s.readOnlySet {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.roChanged && s.roValue == "off"
}

// reassertReadOnly puts default_transaction_read_only back on in read-only modes where a
// transaction of the client's may begin inside a request, after one ended (walk): the
// statements before it in the request may have turned it off. In the other modes it gives the
// client its own value back when the shim still holds it on: the transaction that ended began
// while the site was read-only, and the request started in it, so startUnit did not. The
// status must be idle.
func (s *session) reassertReadOnly(pol policy) error {
	if !s.readOnlyChange(pol) {
		return nil
	}
	s.readOnlySet = pol.readOnly
	if !pol.readOnly {
		return s.releaseReadOnly()
	}
	return s.forceReadOnly()
}

// forceReadOnly pipelines the shim's SET default_transaction_read_only = on, first keeping the
// client's own value (roSaved): the value in the session, unless the shim set it and the client
// has not changed it since.
func (s *session) forceReadOnly() error {
	s.mu.Lock()
	if !s.roForced || s.roChanged || s.roSetByClient {
		s.roSaved = s.roValue
	}
	s.roChanged = false
	s.mu.Unlock()
	s.roForced, s.roSetByClient = true, false
	return s.swallow("SET default_transaction_read_only = on")
}

// releaseReadOnly gives the session back the client's own default_transaction_read_only when a
// read-only mode ends (a promotion): the value the client set while the shim held it on, or
// else the one it had before; a RESET would wipe a value the client set itself.
func (s *session) releaseReadOnly() error {
	s.mu.Lock()
	touched, v := s.roChanged || s.roSetByClient, s.roSaved
	s.roChanged = false
	s.mu.Unlock()
	s.roForced, s.roSetByClient = false, false
	switch {
	case touched, v == "on":
		// The session holds the client's value already.
		return nil
	case v == "off":
		return s.swallow("SET default_transaction_read_only = off")
	}
	// Not reported (a server before PostgreSQL 14): the setting's default.
	return s.swallow("RESET default_transaction_read_only")
}

// setsReadOnly reports whether statement st of text is a SET of default_transaction_read_only
// to on ([SESSION] default_transaction_read_only = on, SESSION CHARACTERISTICS … READ ONLY);
// not SET LOCAL, which lasts only for its transaction.
func setsReadOnly(text string, st statement) bool {
	if i := skipBlank(text, st.Start, st.End); st.Kind != kindRead || i+3 > st.End || !strings.EqualFold(text[i:i+3], "SET") {
		return false
	}
	var toks []string // words, "quoted names", 'strings' and single bytes, as written
	tokens(text, st.Start, st.End, func(tok tokKind, b, e int) bool {
		if tok != tokComment && (tok != tokByte || !isSpace(text[b])) {
			toks = append(toks, text[b:e])
		}
		return len(toks) < 12
	})
	is := func(i int, kw string) bool { return i < len(toks) && strings.EqualFold(toks[i], kw) }
	if !is(0, "SET") {
		return false
	}
	i := 1
	if is(1, "SESSION") {
		i = 2
	}
	switch {
	case is(i, "CHARACTERISTICS"):
		for j := i + 1; j+1 < len(toks); j++ {
			if is(j, "READ") && is(j+1, "ONLY") {
				return true
			}
		}
		return false
	case is(i, "default_transaction_read_only") && toks[i][0] != '"', i < len(toks) && toks[i] == `"default_transaction_read_only"`:
	default:
		return false
	}
	if !is(i+1, "=") && !is(i+1, "TO") || i+2 >= len(toks) {
		return false
	}
	v := toks[i+2]
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = v[1 : len(v)-1]
	}
	on, ok := parseBool(v)
	return on && ok
}

// makesReadWrite reports whether statement st of text may make the transaction it runs in, or
// begins, read-write: BEGIN or START TRANSACTION … READ WRITE, SET [LOCAL | SESSION]
// TRANSACTION … READ WRITE (TestReadOnlySetLocalTransactionReadWrite), and a SET or RESET of
// transaction_read_only to anything but true (a U&"…" name counted too).
// A transaction that began read-only can turn read-write only so, before its first query:
// set_config and a function's SET clause run in a query, which PostgreSQL then refuses
// (25001), and SET SESSION CHARACTERISTICS or default_transaction_read_only change the
// default only, which read-only modes put back before each transaction (readOnlyChange).
func makesReadWrite(text string, st statement) bool {
	i := skipBlank(text, st.Start, st.End)
	first := func(kw string) bool {
		return i+len(kw) <= st.End && strings.EqualFold(text[i:i+len(kw)], kw) && (i+len(kw) == st.End || !isIdentChar(text[i+len(kw)]))
	}
	if st.Kind != kindBegin && !first("SET") && !first("RESET") {
		return false
	}
	var toks []string // words, "quoted names", 'strings' and single bytes but the ending ';', as written
	tokens(text, i, st.End, func(tok tokKind, b, e int) bool {
		if tok != tokComment && (tok != tokByte || !isSpace(text[b]) && text[b] != ';') {
			toks = append(toks, text[b:e])
		}
		return true
	})
	is := func(j int, kw string) bool { return j < len(toks) && strings.EqualFold(toks[j], kw) }
	readWrite := func(from int) bool {
		for j := from; j+1 < len(toks); j++ {
			if is(j, "READ") && is(j+1, "WRITE") {
				return true
			}
		}
		return false
	}
	// name: toks[j] may name transaction_read_only (names are case-insensitive, quoted too).
	name := func(j int) bool {
		if j >= len(toks) {
			return false
		}
		if is(j, "U") && j+1 < len(toks) && toks[j+1] == "&" {
			return true
		}
		n := toks[j]
		if len(n) >= 2 && n[0] == '"' && n[len(n)-1] == '"' {
			n = n[1 : len(n)-1]
		}
		return strings.EqualFold(n, "transaction_read_only")
	}
	switch {
	case st.Kind == kindBegin:
		return readWrite(1)
	case is(0, "RESET"):
		return name(1)
	}
	j := 1
	if is(1, "LOCAL") || is(1, "SESSION") {
		j = 2
	}
	if is(j, "TRANSACTION") {
		// SET LOCAL TRANSACTION and SET SESSION TRANSACTION are SET TRANSACTION's spellings.
		return readWrite(j + 1)
	}
	if !name(j) {
		return false
	}
	// Anything but one value that reads as true: off, DEFAULT, FROM CURRENT.
	if !is(j+1, "=") && !is(j+1, "TO") || j+3 != len(toks) {
		return true
	}
	v := toks[j+2]
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = v[1 : len(v)-1]
	}
	on, ok := parseBool(v)
	return !on || !ok
}

// changesReadOnly reports whether statement st of text may change the session's
// default_transaction_read_only: any SET (SESSION CHARACTERISTICS too), RESET (ALL), DISCARD
// (ALL), a statement that calls set_config, and DO, CALL and EXECUTE, which run what the shim
// does not read here. A function that sets it in its body is not seen; PostgreSQL ≥ 14
// reports it (readOnlyChange). A U&"…" name may spell any of those words: counted too.
func changesReadOnly(text string, st statement) bool {
	i := skipBlank(text, st.Start, st.End)
	for _, kw := range []string{"SET", "RESET", "DISCARD", "DO", "CALL", "EXECUTE"} {
		if i+len(kw) <= st.End && strings.EqualFold(text[i:i+len(kw)], kw) && (i+len(kw) == st.End || !isIdentChar(text[i+len(kw)])) {
			return true
		}
	}
	return containsFold(text[st.Start:st.End], "set_config") || containsFold(text[st.Start:st.End], "u&")
}

// noSnapshot tells whether statement st of text, a read, is one PostgreSQL runs without taking
// a snapshot and that writes nothing: SET LOCAL, SET TRANSACTION, SET CONSTRAINTS, SHOW.
func noSnapshot(text string, st statement) bool {
	if warnsOutsideBlock(text, st) != "" {
		return true
	}
	i := skipBlank(text, st.Start, st.End)
	return st.Kind == kindRead && i+4 <= st.End && strings.EqualFold(text[i:i+4], "SHOW") && (i+4 == st.End || !isIdentChar(text[i+4]))
}

// savepointCommand returns, for statement st of text, a savepoint command, the name PostgreSQL
// gives it in the error (25P01) it answers outside a transaction block: "SAVEPOINT", "RELEASE
// SAVEPOINT" or "ROLLBACK TO SAVEPOINT"; else "".
func savepointCommand(text string, st statement) string {
	i := skipBlank(text, st.Start, st.End)
	if st.Kind != kindSavepoint || i >= st.End {
		return ""
	}
	tok, e := nextToken(text, i, false)
	switch w := text[i:min(e, st.End)]; {
	case tok != tokWord:
	case strings.EqualFold(w, "SAVEPOINT"):
		return "SAVEPOINT"
	case strings.EqualFold(w, "RELEASE"):
		return "RELEASE SAVEPOINT"
	case strings.EqualFold(w, "ROLLBACK"):
		return "ROLLBACK TO SAVEPOINT"
	}
	return ""
}

// warnsOutsideBlock returns, for statement st of text, the name PostgreSQL gives it in the
// warning (25P01) it answers outside a transaction block, in the extended protocol's implicit
// transaction too: "SET LOCAL", "SET TRANSACTION" or "SET CONSTRAINTS"; else "".
func warnsOutsideBlock(text string, st statement) string {
	if i := skipBlank(text, st.Start, st.End); st.Kind != kindRead || i+3 > st.End || !strings.EqualFold(text[i:i+3], "SET") {
		return ""
	}
	var w []string
	tokens(text, st.Start, st.End, func(tok tokKind, b, e int) bool {
		switch {
		case tok == tokWord:
			w = append(w, text[b:e])
		case tok == tokComment, tok == tokByte && isSpace(text[b]):
			return true
		default:
			return false
		}
		return len(w) < 2
	})
	if len(w) < 2 || !strings.EqualFold(w[0], "SET") {
		return ""
	}
	for _, n := range []string{"LOCAL", "TRANSACTION", "CONSTRAINTS"} {
		if strings.EqualFold(w[1], n) {
			return "SET " + n
		}
	}
	return ""
}

// handleFunctionCall relays a fast-path function call as its own request, never wrapped. The
// shim cannot tell what the function does, so in a transaction it counts as a write (the
// commit consults the peer), and outside one it is refused where writes are (read-only and
// fenced modes: the client may have turned default_transaction_read_only off). Outside a
// transaction it passes the commit gate and commits plainly, and in dual mode its reply waits
// until the peer has what was committed, as a procedure's does (lastPartProc).
func (s *session) handleFunctionCall(ctx context.Context, typ byte, body []byte) error {
	st, err := s.barrier()
	if errors.Is(err, errCopyOpen) {
		return s.abortCopy(typ, body)
	}
	if err != nil {
		return err
	}
	if st != 'I' {
		s.txWrote, s.wroteAt = true, s.pushSeq
		s.ran, s.ranAt = true, s.pushSeq
		s.push(&pending{fwd: true, fwdRFQ: true})
		return s.forward(typ, body, true)
	}
	pol := s.policy()
	if refused, err := s.startUnit(pol, true); err != nil || refused {
		return err
	}
	if pol.readOnly {
		if err := s.emitError("25006", fmt.Sprintf("tandem: this site is %s: fast-path function calls are refused outside a transaction block", pol.mode)); err != nil {
			return err
		}
		return s.emitRFQ('I')
	}
	// It may commit a write, outside the commit procedure: it passes the gate as a procedure
	// does (walk), so that a hold (catch-up) stops it and a handover's Drain waits for it and
	// its reply's wait for the peer. One that comes through after the role was given up is
	// refused.
	cur, err := s.enterSlow(ctx, pol)
	if err != nil {
		return err
	}
	defer s.shim.gate.leaveSlow(s)
	if cur == nil {
		if err := s.emitError("25006", fmt.Sprintf("tandem: this site is no longer master of term %d; fast-path function call not run", pol.term)); err != nil {
			return err
		}
		return s.emitRFQ('I')
	}
	p := &pending{fwd: true, res: make(chan result, 1)}
	s.push(p)
	if err := s.forward(typ, body, true); err != nil {
		return err
	}
	return s.replyOnceShipped(ctx, p, policyFor(*cur))
}

func cString(b []byte) (string, []byte, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", nil, false
	}
	return string(b[:i]), b[i+1:], true
}

// lex splits a query into statements, taking a read that calls a function that may write for
// a write and marking what may notify (funcs.go), and notes the functions it creates.
func (s *session) lex(sql string) []statement {
	sts := splitStatements(sql)
	f := s.shim.funcs
	for i := range sts {
		st := &sts[i]
		if st.Kind == kindDDL {
			f.noteDDL(st, sql[st.Start:st.End])
		}
		f.check(st)
		if st.Kind == kindRead && callsLargeObjectWriter(st.Calls) {
			st.Kind = kindWrite
		}
	}
	return sts
}

// pastKeptCalls tells whether a statement of kind, with calls past those the lexer kept
// (manyCalls), counts as a write under pol: a large-object writer among them is not seen, and
// on a read-only site, where PostgreSQL 15 would run it, such a read is taken for a write. It
// is decided for the mode the statement runs in, not the one it was parsed in: a statement
// prepared while the site was master may run after it became read-only.
func pastKeptCalls(kind stmtKind, manyCalls bool, pol policy) bool {
	return kind == kindRead && manyCalls && pol.readOnly
}

// checkSettings ends the session (settingError) before statements sts of text run when one
// changes a setting the lexer depends on to a value it cannot follow (lexerSetting): PostgreSQL
// would parse what comes after it in the same request, or in one pipelined behind it, under
// that setting, before the shim sees the ParameterStatus that ends the session — a write or a
// COMMIT the lexer took for part of a string would bypass the shim. One that may change such a
// setting where the shim cannot tell to what makes the next request wait for its reply
// (lexWait), and ends the session when more follows it in the same request: statements after
// it in a Query (query), which the shim may send on their own, or a later Parse of the same
// extended request (lexUnsure). Requests already sent get their replies first. waitAfter: a
// Query (query) holds such a statement; lexWait is to be set once it is sent.
func (s *session) checkSettings(text string, sts []statement, query bool) (waitAfter bool, err error) {
	for _, st := range sts {
		if st.Kind == kindEmpty {
			continue
		}
		if s.lexUnsure {
			s.barrier()
			return false, &settingError{"a statement after one that may change standard_conforming_strings or client_encoding (set_config with arguments that are not literals, a DO block that names one) in the same request is not supported"}
		}
		unsafe, unsure := lexerSetting(text, st)
		if unsafe {
			s.barrier()
			stmt := strings.TrimSpace(text[st.Start:st.End])
			if len(stmt) > 200 {
				stmt = stmt[:200] + "…"
			}
			return false, &settingError{"standard_conforming_strings off and the client-only encodings are not supported: " + stmt}
		}
		if unsure {
			s.lexUnsure = true
		}
	}
	if query && s.lexUnsure {
		s.lexUnsure = false
		return true, nil
	}
	return false, nil
}

// handleQuery processes a simple Query: passed through when nothing in it needs the shim, else
// split by the lexer around the statements that do (DESIGN §5.1).
func (s *session) handleQuery(ctx context.Context, body []byte) error {
	text, rest, ok := cString(body)
	if !ok || len(rest) != 0 {
		return &protocolError{"malformed Query message"}
	}
	s.lastExt, s.skipRFQ = false, false
	sts := s.lex(text)
	s.copyAsked = slices.ContainsFunc(sts, func(x statement) bool { return x.CopyIn })
	s.noteCopyAsked()
	waitAfter, err := s.checkSettings(text, sts, true)
	if err != nil {
		return err
	}
	pol := s.policy()
	for i := range sts {
		if pastKeptCalls(sts[i].Kind, sts[i].ManyCalls, pol) {
			sts[i].Kind = kindWrite
		}
	}
	st, err := s.barrier()
	if err == nil {
		s.lexWait = false
	}
	if waitAfter {
		defer func() { s.lexWait = true }()
	}
	if errors.Is(err, errCopyOpen) {
		return s.abortCopy('Q', body)
	}
	if err != nil {
		return err
	}
	if st == 'I' {
		if refused, err := s.startUnit(pol, true); refused || err != nil {
			return err
		}
	}
	defer s.queryNames(s.namesOps(text, sts), sts, st) // namesOps runs now, before any part
	u := &queryUnit{text: text, sts: sts}
	if !needsWork(u, st, pol, s.readOnlyChange(pol)) {
		s.noteAll(u)
		s.push(&pending{fwd: true, fwdRFQ: true})
		return s.forward('Q', body, true)
	}
	if st != 0 && pol.intercept && commitThenMore(u, pol) {
		bad, failed, err := s.unparsable(text, st)
		if err != nil {
			return err
		}
		if failed != nil {
			// The check failed but for the Query's statements (a cancel of the client's), or
			// PostgreSQL reads them otherwise: the Query fails, none of it run (a block with it).
			if err := s.emit(failed.err); err != nil {
				return err
			}
			return s.emitRFQ(failed.status)
		}
		if bad {
			// PostgreSQL fails it whole, with the error it reports, having run nothing.
			s.push(&pending{fwd: true, fwdRFQ: true})
			return s.forward('Q', body, true)
		}
	}
	us := unitState{open: true, st: st}
	return s.walk(ctx, u, &us, pol, true)
}

// queryInRequest runs the simple Query body that the client sent inside an extended request
// (s.unit open), after a part sent unanswered and nothing held since, where PostgreSQL runs it
// in the request's transaction: at its end it commits that transaction when it is the
// implicit one, the request's Sync after it then answered as on an idle session. Where the part
// runs in the shim's block (a write's, a COPY's) or the client's, the Query is walked in that,
// as a request's last part: the shim's block is committed (a dual commit with what the part
// wrote) or rolled back at the Query's end, the client's goes on (TestCopyPartDoneThenQuery).
// ran: false, nothing sent, when the part runs in no block (the request's implicit
// transaction, which the walk cannot join) or a failed one, or its outcome is not known (a
// part with no COPY whose end endCopyPart probed), or the Query ends a transaction and goes
// on, or opens a COPY.
func (s *session) queryInRequest(ctx context.Context, body []byte) (ran bool, err error) {
	text, rest, ok := cString(body)
	if !ok || len(rest) != 0 {
		return false, &protocolError{"malformed Query message"}
	}
	st, err := s.blockInRequest()
	if err != nil || st != 'T' {
		return false, err
	}
	us := &s.unit
	pol := s.policy()
	sts := s.lex(text)
	u := &queryUnit{text: text, sts: sts}
	if commitThenMore(u, pol) {
		return false, nil
	}
	for _, x := range sts {
		if x.CopyIn {
			// Its data would be relayed within the request's walk.
			return false, nil
		}
	}
	s.lastExt, s.skipRFQ = false, false
	s.copyAsked = false
	s.noteCopyAsked()
	waitAfter, err := s.checkSettings(text, sts, true)
	if err != nil {
		return false, err
	}
	if waitAfter {
		defer func() { s.lexWait = true }()
	}
	for i := range sts {
		if pastKeptCalls(sts[i].Kind, sts[i].ManyCalls, pol) {
			sts[i].Kind = kindWrite
		}
	}
	s.mu.Lock()
	s.copyPart, s.copyPartStatus, s.copyPartDone, s.copyPartErr = false, 0, false, false
	s.mu.Unlock()
	defer s.queryNames(s.namesOps(text, sts), sts, st) // namesOps runs now, before any part
	us.st, us.assumed, us.pipelined = st, 0, false
	err = s.walk(ctx, u, us, pol, true)
	// The parts' transaction is over (or the client's block holds what they wrote).
	s.mu.Lock()
	s.partWrite, s.partUnsure = false, 0
	s.mu.Unlock()
	return true, err
}

// blockInRequest tells, for a simple Query or FunctionCall inside the open extended request
// (queryInRequest, callInRequest), the status the request's steps before it leave: 'T' when
// it runs in a transaction block, the shim's or the client's, which the shim can tell; 0
// when it cannot be run there.
func (s *session) blockInRequest() (byte, error) {
	us := &s.unit
	if us.st == 0 && !s.copyPart {
		// A part went unanswered, and it holds no COPY whose end endCopyPart probed: neither
		// an error in it, after which PostgreSQL skips the Query (the walk then waited for its
		// reply for good), nor the transaction it leaves (the last ReadyForQuery's status, a
		// block a ROLLBACK in the part ended, where the Query's end commits on this database
		// alone) is known (TestPartUnknownThenQuery).
		return 0, nil
	}
	if a := us.assumed; us.st == 0 && a != 0 && a != 'T' {
		// The walk followed the part out of a block (a ROLLBACK, a COMMIT): the Query runs in
		// the request's implicit transaction, which the walk cannot join.
		return 0, nil
	}
	st, err := s.barrier()
	if errors.Is(err, errCopyOpen) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if st != 'T' {
		// Outside a block, or in a failed one: an error in the request, after which
		// PostgreSQL skips the Query up to the Sync, may be what failed it.
		return 0, nil
	}
	return st, nil
}

// callInRequest runs a FunctionCall (typ, body) the client sent inside the open extended
// request, after a COPY part that ended well or a wrapped COPY's CopyDone the request went on
// past, as queryInRequest runs a simple Query there: PostgreSQL runs the call in the request's
// transaction and ends it as it ends a Query — it commits the implicit transaction (here the
// shim's block, with the COPY's rows: one dual commit) or rolls it back at an error, and
// sends a ReadyForQuery; in the client's block the call runs in that. The Sync after it is a
// request of its own (TestCopyDoneThenFunctionCall). ran: false when the block is not known
// (blockInRequest): the caller ends the session.
func (s *session) callInRequest(ctx context.Context, typ byte, body []byte) (ran bool, err error) {
	st, err := s.blockInRequest()
	if err != nil || st != 'T' {
		return false, err
	}
	us := &s.unit
	injected, procLeft := us.injected, us.procLeft
	pol := s.policy()
	s.lastExt, s.skipRFQ = false, false
	s.copyAsked = false
	s.noteCopyAsked()
	s.mu.Lock()
	s.copyPart, s.copyPartStatus, s.copyPartDone, s.copyPartErr = false, 0, false, false
	s.partWrite, s.partUnsure = false, 0
	s.mu.Unlock()
	*us = unitState{}
	// In a block it counts as a write (handleFunctionCall).
	s.txWrote, s.wroteAt = true, s.pushSeq
	s.ran, s.ranAt = true, s.pushSeq
	if !injected {
		s.push(&pending{fwd: true, fwdRFQ: true})
		return true, s.forward(typ, body, true)
	}
	p := &pending{fwd: true, res: make(chan result, 1)}
	s.push(p)
	if err := s.forward(typ, body, true); err != nil {
		return true, err
	}
	r, err := s.wait(p)
	if err != nil {
		return true, err
	}
	switch r.status {
	case 'T':
		if _, err := s.commitProc(ctx, pol, false, false); err != nil {
			return true, err
		}
	case 'E':
		if _, err := s.capture("ROLLBACK"); err != nil {
			return true, err
		}
	}
	s.txUnprep, s.txWrote, s.txHold = false, false, false
	if procLeft {
		// What a procedure before the COPY committed (joinImplicit).
		if _, err := s.awaitLeft(ctx, s.procPolicy(pol), 'I'); err != nil {
			return true, err
		}
	}
	return true, s.emitRFQ('I')
}

// joinImplicit turns the request's implicit transaction, which a COPY part after a procedure
// ran in (copyPartImplicit) and which is still open, its COPY ended well (endCopyPart), into a
// block of the shim's: PostgreSQL runs a simple Query or FunctionCall sent next, before the
// Sync, in that transaction and commits it at its end (the procedure's writes since its last
// COMMIT, the COPY's rows and the Query's), which the shim cannot join outside a block. A
// BEGIN there takes in what the implicit transaction holds; walk then goes on in the block
// as after a wrapped COPY (queryInRequest, callInRequest), its end one dual commit, and the
// reply waits until the peer has what the procedure committed (procLeft)
// (TestCopyPartAfterCallThenQuery). joined: false when the BEGIN did not leave a block (the
// caller ends the session, as before).
func (s *session) joinImplicit() (joined bool, err error) {
	us := &s.unit
	if us.skipping || us.injected || us.st != 0 && us.st != 'I' {
		return false, nil
	}
	if _, err := s.barrier(); err != nil {
		if errors.Is(err, errCopyOpen) {
			return false, nil
		}
		return false, err
	}
	r, err := s.capture("BEGIN")
	if err != nil {
		return false, err
	}
	if r.err != nil || r.status != 'T' {
		us.st = r.status
		return false, nil
	}
	us.injected, us.st, us.assumed, us.pipelined = true, 'T', 0, false
	s.mu.Lock()
	s.copyPartImplicit = false
	s.mu.Unlock()
	return true, nil
}

// commitThenMore tells whether a statement follows a COMMIT or ROLLBACK, or one the shim refuses,
// in u, a simple Query. PostgreSQL parses a Query whole before it runs any of it, and runs none
// of it when a statement does not parse. The shim runs the COMMIT itself (walk), sending the
// statements before it first, splits the Query after a ROLLBACK, and runs the statements before
// one it refuses: a statement after them that does not parse failed only once they had
// committed, or the ROLLBACK had ended the client's transaction block, which PostgreSQL leaves
// failed, or the client had the refusal, a BEGIN before it run (unparsable).
func commitThenMore(u *queryUnit, pol policy) bool {
	end := false
	for i := range u.sts {
		switch info := u.info(i); {
		case end && info.kind != kindEmpty:
			return true
		case info.kind == kindCommit, info.kind == kindRollback, info.kind == kindClient2PC,
			info.ownObject != "", info.explainMakes, info.prepareMakes, info.fromCurrent != "", info.makesRW && pol.readOnly:
			end = true
		}
	}
	return false
}

// parseCheckName is the savepoint unparsable sets in the client's transaction block.
const parseCheckName = reservedPrefix + "parse"

// parseQuiet keeps the parse check's error, and the STATEMENT line with the Query's text (a
// password of an ALTER ROLE in it), out of the server log: set locally in the transaction the
// check runs in, so that they are gone however it ends (unparsable).
var parseQuiet = [...]string{"SET LOCAL log_min_messages = fatal", "SET LOCAL log_min_error_statement = panic"}

// parseCheckBegin and parseCheckEnd bound the block of the shim's own a quieted parse check
// runs in outside the client's. READ COMMITTED: a Parse that succeeds takes a snapshot, which
// under SERIALIZABLE, READ ONLY and DEFERRABLE defaults waits for a safe one (captureAlone).
const (
	parseCheckBegin = "BEGIN ISOLATION LEVEL READ COMMITTED"
	parseCheckEnd   = "ROLLBACK"
)

// unparsable tells whether PostgreSQL fails to parse text, a simple Query of several statements
// the session sends in status st: a Parse of it fails, with the error PostgreSQL gives a Query
// of several statements there (42601, without a position) when each statement parses. In the
// client's transaction block the Parse runs under a savepoint of the shim's, rolled back and
// released, so that its error does not abort the block; in a failed block PostgreSQL parses it
// all the same, before it refuses it for the block. The client's cancel (or its
// statement_timeout) may land on the savepoint's statements: on the SAVEPOINT, it failed the
// block, and the Query fails with it (failed); on the ROLLBACK TO SAVEPOINT or the RELEASE, they
// are sent again.
//
// bad (the Query is forwarded whole, for PostgreSQL to fail again) only for an error with a
// position, the raw parser's, which PostgreSQL gives the Query the same. Any other outcome fails
// the Query with nothing run (failed): another error without a position (a cancel or
// statement_timeout landing on the Parse, a lack of memory) says nothing of the statements,
// and PostgreSQL might well run the Query forwarded — its COMMIT too, past the shim's dual
// commit; a Parse that succeeds means PostgreSQL reads one statement where the shim's lexer
// reads a COMMIT or ROLLBACK and more, so that neither forwarding the Query nor splitting it
// runs what the client meant (0A000). In the client's block the block fails with it, as at any
// error: the savepoint is left failed (the Parse's error aborted it; a Parse that succeeded is
// made to fail by a raise of the shim's), to be ended with the block or an outer savepoint.
//
// The Parse's error would leave an ERROR line, and a STATEMENT line with the whole Query, in the
// server log for every such Query. When the session's role is a superuser (who may change the
// log settings) the check is quieted (parseQuiet), transaction-locally: under the savepoint in
// the client's block, whose ROLLBACK TO SAVEPOINT reverts them (as does an error, a cancel's,
// that aborts it), and outside one in a block of the shim's own (parseCheckBegin), rolled back
// (sent again until the session is idle). In a failed block nothing can be set: not quieted. A
// cancel landing on a setting fails the Parse of a single statement after it for the aborted
// transaction (25P02): the Query fails with the cancel's error then.
func (s *session) unparsable(text string, st byte) (bad bool, failed *result, err error) {
	s.mu.Lock()
	quiet := s.superuser && st != 'E'
	s.mu.Unlock()
	var sp *pending
	switch {
	case st == 'T':
		sp = &pending{res: make(chan result, 1)}
		if err := s.sendOwn(s.viaStepHook("SAVEPOINT "+parseCheckName), sp, false); err != nil {
			return false, nil, err
		}
	case quiet:
		if err := s.swallow(s.viaStepHook(parseCheckBegin)); err != nil {
			return false, nil, err
		}
	}
	var qs []*pending
	if quiet {
		for _, q := range parseQuiet {
			p := &pending{res: make(chan result, 1)}
			if err := s.sendOwn(s.viaStepHook(q), p, false); err != nil {
				return false, nil, err
			}
			qs = append(qs, p)
		}
	}
	p := &pending{res: make(chan result, 1)}
	if err := s.sendOwn(s.viaStepHook(text), p, false); err != nil {
		return false, nil, err
	}
	var end *pending // the shim's block ends whatever the Parse did: pipelined
	if quiet && st != 'T' {
		end = &pending{res: make(chan result, 1)}
		if err := s.sendOwn(s.viaStepHook(parseCheckEnd), end, false); err != nil {
			return false, nil, err
		}
	}
	r, err := s.wait(p)
	if err != nil {
		return false, nil, err
	}
	if st == 'T' {
		spr, err := s.wait(sp)
		if err != nil {
			return false, nil, err
		}
		if spr.err != nil {
			r.err = spr.err
			return false, &r, nil
		}
	}
	var qerr *pgproto3.ErrorResponse
	for _, p := range qs {
		qr, err := s.wait(p)
		if err != nil {
			return false, nil, err
		}
		if qerr == nil {
			qerr = qr.err
		}
	}
	several := r.err != nil && r.err.Code == "42601" && r.err.Position == 0
	bad = r.err != nil && r.err.Position != 0
	if !several && !bad {
		if r.err == nil {
			r.err = &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "0A000",
				Message: "tandem: PostgreSQL reads this Query as one statement where the shim reads a COMMIT or ROLLBACK (or a statement it refuses) and more; it was not run"}
			if st == 'T' {
				// Failed in the savepoint, the block with it.
				rr, err := s.capture(raiseSQL(r.err.Code, r.err.Message))
				if err != nil {
					return false, nil, err
				}
				r.status = rr.status
			}
		} else if qerr != nil {
			r.err = qerr
		}
		if st == 'T' {
			return false, &r, nil
		}
	}
	switch {
	case st == 'T':
		for i := 0; ; i++ {
			if err := s.swallow(s.viaStepHook("ROLLBACK TO SAVEPOINT " + parseCheckName)); err != nil {
				return false, nil, err
			}
			rr, err := s.capture(s.viaStepHook("RELEASE SAVEPOINT " + parseCheckName))
			if err != nil {
				return false, nil, err
			}
			if rr.err == nil {
				break
			}
			if i == ownRetries {
				return false, nil, fmt.Errorf("txshim: releasing the parse check's savepoint: %s", rr.err.Message)
			}
		}
	case end != nil:
		// Sent again until the session is idle. Its warning when no block is open (the BEGIN
		// cancelled) does not reach the client.
		rr, err := s.wait(end)
		for i := 0; err == nil && (rr.err != nil || rr.status != 'I'); i++ {
			if i == ownRetries {
				return false, nil, fmt.Errorf("txshim: ending the parse check's transaction: status %c, %v", rr.status, rr.err)
			}
			rr, err = s.capture(s.viaStepHook(parseCheckEnd))
		}
		if err != nil {
			return false, nil, err
		}
		r.status = rr.status
	}
	if several || bad {
		return bad, nil, nil
	}
	return false, &r, nil
}

// namesOps reads what a Query's statements sts do to prepared statements, once: the kept ones
// are forgotten before any part runs (a commit check later in the Query must not use a
// statement an earlier part ended), the records follow once the Query ran (queryNames).
func (s *session) namesOps(text string, sts []statement) []namesOp {
	var ops []namesOp
	for _, x := range sts {
		if op := namesOpOf(text, x); op.op != 0 {
			ops = append(ops, op)
			s.forgetKeptFor(op)
			if _, had := s.stmts[op.name]; op.op == 'P' && !had && !x.Unpreparable {
				// The name was free: SQL EXECUTE of it runs the new statement (unprepNames).
				delete(s.unprepNames, op.name)
			}
		}
	}
	return ops
}

// queryNames applies what the statements sts of a simple Query, sent in status st, did to the
// session's prepared statements (ops: SQL PREPARE, DEALLOCATE, DISCARD ALL). A DEALLOCATE or DISCARD
// ALL took effect for sure only when it was the whole Query, outside a transaction block (where
// DISCARD ALL fails); otherwise the statements it ends may still be there.
func (s *session) queryNames(ops []namesOp, sts []statement, st byte) {
	defer func(n int) { s.undo = s.undo[:n] }(len(s.undo)) // the Query is not dropped after this
	alone := 0
	for _, x := range sts {
		if x.Kind != kindEmpty {
			alone++
		}
	}
	for _, op := range ops {
		s.applyNames(op, alone == 1 && st == 'I')
		// A COMMIT before it in the Query, run by the shim, parsed the kept statements again
		// (forgotten before the Query ran) that a DEALLOCATE ALL after it ended.
		s.forgetKeptFor(op)
	}
}

// applyNames applies a statement's namesOp; certain: it ran (see queryNames).
func (s *session) applyNames(op namesOp, certain bool) {
	switch op.op {
	case 'P':
		// PostgreSQL holds the statement it had (the PREPARE failed) or the new one, whose kind
		// the shim does not read.
		si := unknownStmt
		if old, ok := s.stmts[op.name]; ok {
			si = mergeStmts(old, si)
		}
		s.setStmt(op.name, si, false)
		delete(s.parsed, op.name)
	case 'D':
		s.endStmt(op.name, certain)
		delete(s.parsed, op.name)
	case 'A':
		clear(s.parsed)
		for name := range s.stmts {
			if name != "" { // not among those DEALLOCATE ALL ends
				s.endStmt(name, certain)
			}
		}
	}
}

// makesTable tells whether the prepared statement name, as the shim knows it, makes a table
// (SELECT … INTO, parsed in the extended protocol), or may (one of the two statements it may be,
// mergeStmts): EXPLAIN ANALYZE EXECUTE of it is refused (explainMakesRefusal).
func (s *session) makesTable(name string) bool {
	si, ok := s.parsed[name]
	if !ok {
		si, ok = s.stmts[name]
	}
	return ok && (si.kind == kindDDL || si.mayDDL)
}

// explainExecName is the name of the prepared statement EXPLAIN ANALYZE EXECUTE statement st of
// text runs, as PostgreSQL looks it up; "" for another statement.
func explainExecName(text string, st statement) string {
	if st.ExplainExec.end == 0 {
		return ""
	}
	return string(foldName(text[st.ExplainExec.start:st.ExplainExec.end], nil))
}

// execNameOf is the name of the prepared statement EXECUTE or EXPLAIN ANALYZE EXECUTE statement
// st of text runs, as PostgreSQL looks it up (stmtKey); "" for another statement.
func execNameOf(text string, st statement) string {
	if n := explainExecName(text, st); n != "" {
		return stmtKey(n)
	}
	i := skipBlank(text, st.Start, st.End)
	if i >= st.End {
		return ""
	}
	tok, end := nextToken(text, i, false)
	if tok != tokWord || !strings.EqualFold(text[i:end], "EXECUTE") {
		return ""
	}
	if i = skipBlank(text, end, st.End); i >= st.End {
		return ""
	}
	if tok, end = nextToken(text, i, false); tok != tokWord && tok != tokQuoted {
		return ""
	}
	return stmtKey(string(foldName(text[i:end], nil)))
}

// unprepNameOf is the name statement st of text, a PREPARE, gives a statement that makes its
// transaction one that cannot be prepared (pg_notify); "" for another statement.
func unprepNameOf(text string, st statement) string {
	if !st.Unpreparable {
		return ""
	}
	if op := namesOpOf(text, st); op.op == 'P' {
		return stmtKey(op.name)
	}
	return ""
}

// setStmt changes the record of a prepared statement (del: removes it), noting the change for
// revertStmts.
func (s *session) setStmt(name string, si stmtInfo, del bool) {
	prev, had := s.stmts[name]
	s.undo = append(s.undo, stmtUndo{item: len(s.items), name: name, prev: prev, had: had})
	if del {
		delete(s.stmts, name)
	} else {
		s.stmts[name] = si
	}
}

// endStmt records the end (Close, DEALLOCATE) of a prepared statement: gone when the end surely
// ran, else marked closing.
func (s *session) endStmt(name string, certain bool) {
	si, ok := s.stmts[name]
	switch {
	case !ok:
	case certain || name == "":
		// The unnamed statement is replaced by any Parse, failed or not: a stale record of it
		// is never used in place of a new one.
		s.setStmt(name, si, true)
		delete(s.unprepNames, name)
	case !si.closing:
		si.closing = true
		s.setStmt(name, si, false)
	}
}

// revertStmts undoes the changes to the prepared statements' records made by the buffered
// messages from index from on, which the shim drops unsent.
func (s *session) revertStmts(from int) {
	for len(s.undo) > 0 {
		u := s.undo[len(s.undo)-1]
		if u.item < from {
			return
		}
		if u.had {
			s.stmts[u.name] = u.prev
		} else {
			delete(s.stmts, u.name)
		}
		s.undo = s.undo[:len(s.undo)-1]
	}
}

// reservedPrefix begins the names of the shim's own prepared statements and portals (ownName,
// keptPrefix, beginName). The client's own names that begin with it are renamed (clientNames),
// so that none can ever be one of the shim's.
const reservedPrefix = "tandem_shim_"

// clientNames returns body, a Parse, Bind, Describe, Execute or Close message of the client,
// with each name of a prepared statement or portal that begins with reservedPrefix renamed:
// the prefix gets a "c" (tandem_shim_kept_1 goes to PostgreSQL as tandem_shim_ckept_1), which
// no name of the shim's has. A name the client chose goes on meaning the same thing in every
// message; only PostgreSQL's messages (and pg_prepared_statements) show the name it holds.
// body itself, unless a name is renamed.
func clientNames(typ byte, body []byte) []byte {
	start, n := nameFields(typ)
	if n == 0 || start > len(body) {
		return body
	}
	rename := false
	for i, at := 0, start; i < n; i++ {
		end := bytes.IndexByte(body[at:], 0)
		if end < 0 {
			return body // malformed: handleExt says so
		}
		rename = rename || bytes.HasPrefix(body[at:at+end], []byte(reservedPrefix))
		at += end + 1
	}
	if !rename {
		return body
	}
	out := make([]byte, 0, len(body)+n)
	out = append(out, body[:start]...)
	at := start
	for i := 0; i < n; i++ {
		end := at + bytes.IndexByte(body[at:], 0)
		name := body[at:end]
		if bytes.HasPrefix(name, []byte(reservedPrefix)) {
			out = append(append(append(out, reservedPrefix...), 'c'), name[len(reservedPrefix):]...)
		} else {
			out = append(out, name...)
		}
		out = append(out, 0)
		at = end + 1
	}
	return append(out, body[at:]...)
}

// nameFields tells where in the body of a client message of type typ its names of prepared
// statements or portals are: the first begins at start, and n follow each other (none when n
// is 0: a message that names none).
func nameFields(typ byte) (start, n int) {
	switch typ {
	case 'B':
		return 0, 2 // portal, statement
	case 'D', 'C':
		return 1, 1 // after the kind ('S' or 'P')
	case 'P', 'E':
		return 0, 1
	}
	return 0, 0
}

// renamedTooLong reports whether body, a message of the client's that clientNames renamed,
// holds a renamed name longer than PostgreSQL keeps (63 bytes): cut to 63, two names of the
// client's that differ only in their last byte would be one.
func renamedTooLong(typ byte, body []byte) bool {
	at, n := nameFields(typ)
	for i := 0; i < n && at < len(body); i++ {
		end := bytes.IndexByte(body[at:], 0)
		if end < 0 {
			return false
		}
		if end > 63 && bytes.HasPrefix(body[at:], []byte(reservedPrefix+"c")) {
			return true
		}
		at += end + 1
	}
	return false
}

// reservedNameRefusal is the refusal of statement st of text when it is a PREPARE, EXECUTE or
// DEALLOCATE of a prepared statement, or a DECLARE of a cursor (a portal, as the shim's own
// statements use), named with reservedPrefix: SQL cannot be renamed as the extended protocol's
// names are (clientNames), and the name could be one of the shim's.
func reservedNameRefusal(text string, st statement) string {
	if st.Kind == kindEmpty {
		return ""
	}
	i := skipBlank(text, st.Start, st.End)
	if i >= st.End || !strings.ContainsRune("pPeEdDfFmMcC", rune(text[i])) {
		return ""
	}
	// word reads the token at i: a keyword or unquoted name, as written, or a quoted name's
	// inside; end is past it.
	word := func(i int) (w string, quoted bool, end int) {
		if i = skipBlank(text, i, st.End); i >= st.End {
			return "", false, i
		}
		tok, end := nextToken(text, i, false)
		switch {
		case tok == tokWord:
			return text[i:end], false, end
		case tok == tokQuoted && end-i >= 2:
			return text[i+1 : end-1], true, end
		}
		return "", false, end
	}
	w, _, end := word(i)
	declare := strings.EqualFold(w, "DECLARE")
	cursor := strings.EqualFold(w, "FETCH") || strings.EqualFold(w, "MOVE") || strings.EqualFold(w, "CLOSE")
	if !strings.EqualFold(w, "PREPARE") && !strings.EqualFold(w, "EXECUTE") && !strings.EqualFold(w, "DEALLOCATE") && !declare && !cursor {
		return ""
	}
	name, quoted, end := word(end)
	if !quoted && strings.EqualFold(w, "DEALLOCATE") && strings.EqualFold(name, "PREPARE") {
		name, quoted, _ = word(end)
	}
	for at := end; cursor && at < st.End; {
		// FETCH and MOVE name the cursor last, after a direction and FROM or IN.
		w, q, next := word(at)
		if next <= at {
			break
		}
		if w != "" || q {
			name, quoted = w, q
		}
		at = next
	}
	if len(name) < len(reservedPrefix) || (quoted && name[:len(reservedPrefix)] != reservedPrefix) || !strings.EqualFold(name[:len(reservedPrefix)], reservedPrefix) {
		return ""
	}
	if declare || cursor {
		return "tandem: cursor names beginning with " + reservedPrefix + " are reserved to Tandem in SQL's DECLARE, FETCH, MOVE and CLOSE (the extended protocol's portals may use them, renamed)"
	}
	return "tandem: prepared statement names beginning with " + reservedPrefix + " are reserved to Tandem in SQL's PREPARE, EXECUTE and DEALLOCATE (the extended protocol may use them)"
}

// handleExt buffers an extended-protocol message; Sync (or Flush) processes the buffer.
func (s *session) handleExt(ctx context.Context, typ byte, body []byte) error {
	if len(s.stmts) >= s.stmtsMax && len(s.items) == 0 && !s.unit.open {
		if err := s.pruneStmts(); err != nil {
			return err
		}
	}
	info := stmtInfo{kind: kindEmpty}
	sent := clientNames(typ, body)
	tooLong := len(sent) != len(body) && renamedTooLong(typ, sent)
	body = sent
	switch typ {
	case 'P':
		name, rest, ok := cString(body)
		query, _, ok2 := cString(rest)
		if !ok || !ok2 {
			return &protocolError{"malformed Parse message"}
		}
		s.forgetKeptFor(namesOp{op: 'P', name: stmtKey(name)})
		si := stmtInfo{kind: kindEmpty}
		sts := s.lex(query)
		if _, err := s.checkSettings(query, sts, false); err != nil {
			return err
		}
		for _, st := range sts {
			if st.Kind != kindEmpty {
				si = stmtInfo{kind: st.Kind, chain: st.Chain, temp: st.Temp, unprep: st.Unpreparable, holdWrite: st.Hold && st.Kind.writes(), copyIn: st.CopyIn, proc: st.Proc,
					names: namesOpOf(query, st), blockOnly: st.BlockOnly, setsRO: setsReadOnly(query, st), warnsOutside: warnsOutsideBlock(query, st),
					savepoint: savepointCommand(query, st)}
				si.noSnapshot = noSnapshot(query, st)
				if st.Kind == kindDDL {
					si.text = ddlText(query[st.Start:st.End])
					if f := st.Finalize; f.end != 0 {
						si.text = ddlText(query[st.Start:f.start] + query[f.end:st.End])
					}
				}
				si.shipAfter, si.addsDefault, si.mayUnkey, si.retypes = shipAfterText(query, st), st.AddsDefault, st.MayUnkey, st.Retypes
				si.explainMakes, si.prepareMakes, si.explainExec = st.ExplainMakes, st.PrepareMakes, explainExecName(query, st)
				si.fromCurrent = fromCurrentRefusalOf(query, st)
				si.detached = detachedText(query, st)
				si.execName, si.unprepName = execNameOf(query, st), unprepNameOf(query, st)
				si.changesRO, si.makesRW = changesReadOnly(query, st), makesReadWrite(query, st)
				si.ownObject = ownObjectRefusal(query, st)
				if si.ownObject == "" {
					si.ownObject = reservedNameRefusal(query, st)
				}
				si.manyCalls = st.Kind == kindRead && st.ManyCalls
				break
			}
		}
		// PostgreSQL refuses to redefine a named statement until a Close or DEALLOCATE ends it
		// (42P05), but the shim does not learn whether the Parse of the one it recorded (or
		// an end that may have been skipped) ran: PostgreSQL holds either after the request.
		// Within it, a Bind that runs finds the new one (parsed).
		key := stmtKey(name)
		old, had := s.stmts[key]
		if !had || name == "" {
			s.setStmt(key, si, false)
		} else {
			s.setStmt(key, mergeStmts(old, si), false)
		}
		s.parsed[key] = si
		// A SQL EXECUTE of it (which the shim does not look into) runs what the Execute of
		// its portal would: refused at the Parse, where the shim sees what it is.
		info.explainMakes, info.prepareMakes, info.fromCurrent = si.explainMakes, si.prepareMakes, si.fromCurrent
		if si.unprep && name != "" {
			// SQL EXECUTE may run it (note).
			s.unprepNames[key] = true
		} else if !had {
			// The name was free (a statement of it that notified was closed for sure).
			delete(s.unprepNames, key)
		}
	case 'B':
		portal, rest, ok := cString(body)
		stmt, _, ok2 := cString(rest)
		if !ok || !ok2 {
			return &protocolError{"malformed Bind message"}
		}
		si, known := s.parsed[stmtKey(stmt)]
		if !known {
			si, known = s.stmts[stmtKey(stmt)]
		}
		if !known {
			si = unknownStmt
		}
		if si.maybeTx && !s.unit.skipping {
			// The shim cannot tell whether the portal would begin or end a transaction block,
			// and a COMMIT taken for a write would commit the client's transaction on this
			// database alone. Rare (a statement name parsed again with other SQL after a
			// Parse or Close that may not have run): the session ends, its transaction rolled
			// back, rather than guess.
			return &protocolError{fmt.Sprintf("a Bind of prepared statement %q, parsed again after a Parse or Close of it that may not have run, is not supported: it may or may not be transaction control; Close it at the start of a request, then Parse it again", stmt)}
		}
		si.closing = false
		if len(s.portals) >= s.portalsMax {
			s.prunePortals()
		}
		s.portals[stmtKey(portal)] = portalInfo{si, s.reqs}
		// A Bind of a write is one too, for walk: outside a transaction block BEGIN must come
		// before it, as the portal it makes lasts only as long as its transaction.
		switch {
		case si.kind.writes():
			info = unknownStmt
		case si.kind == kindNoTxBlock:
			info = stmtInfo{kind: kindNoTxBlock, proc: si.proc}
		case si.manyCalls:
			info.manyCalls = true // a write in read-only modes (runBatch)
		}
	case 'E':
		portal, _, ok := cString(body)
		if !ok {
			return &protocolError{"malformed Execute message"}
		}
		p, known := s.portals[stmtKey(portal)]
		si := p.stmtInfo
		if !known {
			si = unknownStmt
		}
		info = si
		if si.names.op != 0 {
			// Messages before it may fail, and PostgreSQL then skips it.
			s.applyNames(si.names, false)
			s.forgetKeptFor(si.names)
		}
	case 'C':
		if len(body) < 2 {
			return &protocolError{"malformed Close message"}
		}
		name, _, ok := cString(body[1:])
		if !ok {
			return &protocolError{"malformed Close message"}
		}
		if body[0] == 'S' {
			// A Close always runs unless an error earlier in its request makes PostgreSQL skip
			// it: sure only at the start of a request, after nothing but Closes.
			certain := !s.unit.open
			for _, it := range s.items {
				certain = certain && it.typ == 'C'
			}
			s.endStmt(stmtKey(name), certain)
			delete(s.parsed, stmtKey(name))
			s.forgetKeptFor(namesOp{op: 'D', name: stmtKey(name)})
		} else {
			delete(s.portals, stmtKey(name))
		}
	}
	if tooLong {
		info.ownObject = "tandem: prepared statement and portal names beginning with " + reservedPrefix + " must be shorter than 63 bytes (Tandem renames them one byte longer, past what PostgreSQL keeps)"
	}
	lo := len(s.ebuf)
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)+4))
	s.ebuf = append(append(s.ebuf, hdr[:]...), body...)
	s.items = append(s.items, item{typ: typ, lo: lo, hi: len(s.ebuf), info: info})
	switch {
	case typ == 'S':
		if s.lexUnsure {
			s.lexUnsure = false
			defer func() { s.lexWait = true }()
		}
		return s.runBatch(ctx, true)
	case typ == 'H' || len(s.ebuf) >= maxBatchBuffer || len(s.items) >= maxBatchItems:
		return s.runBatch(ctx, false)
	}
	return nil
}

// portalInfo is what a Bind recorded of a portal: its statement, and the extended request it
// was bound in (session.reqs).
type portalInfo struct {
	stmtInfo
	req uint64
}

// prunePortals forgets the portals PostgreSQL dropped: it drops a transaction's portals when
// the transaction ends, which the client need not Close, and a session that bound portals of
// ever new names kept a record of each for as long as it lasted. Those bound in the requests
// before the last mark are gone once the database answered an entry pushed after it (the
// requests' ends) with status idle; the mark then moves to now. Run when portals reach
// portalsMax, which doubles with what remains: the usual session, with few names, never runs it.
func (s *session) prunePortals() {
	s.mu.Lock()
	idle := s.idleSeq
	s.mu.Unlock()
	if idle >= s.markSeq {
		for name, p := range s.portals {
			if p.req < s.markReq {
				delete(s.portals, name)
			}
		}
		s.markReq, s.markSeq = s.reqs, s.pushSeq
	}
	s.portalsMax = max(64, 2*len(s.portals))
}

// pruneStmts forgets the statements marked closing (a Close or DEALLOCATE that may have been
// skipped) that PostgreSQL no longer holds: a client that parses and closes statements of ever
// new names in one request, after other messages, left a record of each for as long as the
// session lasted. Run before a request when stmts reaches stmtsMax, which doubles with what
// remains, and only with nothing in flight outside a transaction: the catalog is then exact,
// and the query takes no snapshot of the client's. Names of printable ASCII only are asked
// about, space-separated, which reads the same in every client encoding; others stay.
func (s *session) pruneStmts() error {
	s.mu.Lock()
	idle := s.status == 'I' && len(s.queue) == 0
	s.mu.Unlock()
	if !idle {
		return nil // the next request tries again
	}
	s.stmtsMax = max(64, 2*len(s.stmts))
	var names []string
	for name, si := range s.stmts {
		if si.closing && plainName(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	// In a READ COMMITTED block of its own (captureAlone): in the implicit transaction of the
	// session's defaults, SERIALIZABLE, READ ONLY and DEFERRABLE ones, the query waited for a safe
	// snapshot, and the client's request behind it with it (TestPruneStmtsDeferrableDefaults).
	r, err := s.captureAlone("SELECT pg_catalog.array_to_string(pg_catalog.array_agg(n), ' ') FROM pg_catalog.unnest(pg_catalog.string_to_array($1, ' ')) AS n WHERE n OPERATOR(pg_catalog.=) ANY (SELECT name FROM pg_catalog.pg_prepared_statements)", strings.Join(names, " "))
	if err != nil || r.err != nil || r.row == nil {
		return err
	}
	held := make(map[string]bool)
	for _, name := range strings.Fields(string(r.row[0])) {
		held[name] = true
	}
	for _, name := range names {
		if !held[name] {
			delete(s.stmts, name)
			delete(s.unprepNames, name)
		}
	}
	s.stmtsMax = max(64, 2*len(s.stmts))
	return nil
}

// plainName reports whether name is not empty and all printable ASCII but space.
func plainName(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' {
			return false
		}
	}
	return name != ""
}

// maxBatchBuffer bounds the extended-protocol bytes held back waiting for a Sync, and
// maxBatchItems the messages (each recorded in an item of some 250 bytes: small messages, a
// 7-byte Describe, would otherwise take many times maxBatchBuffer); beyond either the shim sends
// what it has (decisions are then made on that part).
const (
	maxBatchBuffer = 1 << 20
	maxBatchItems  = 8 << 10
)

// runBatch processes the buffered extended-protocol messages; final: they end with Sync.
func (s *session) runBatch(ctx context.Context, final bool) error {
	s.lastExt, s.skipRFQ = true, false
	s.copyAsked = slices.ContainsFunc(s.items, func(it item) bool { return it.typ == 'E' && it.info.copyIn })
	s.noteCopyAsked()
	defer func() {
		if final {
			// After its entries were pushed: the Sync's holds what partWrite said.
			s.mu.Lock()
			s.partWrite, s.partUnsure = false, 0
			s.mu.Unlock()
			// The request's reply went out (or the session ends).
			s.leaveProcGate()
		}
		s.ebuf = s.ebuf[:0]
		s.items = s.items[:0]
		s.undo = s.undo[:0]
		if final {
			clear(s.parsed)
			s.reqs++
		}
		if cap(s.ebuf) > 4*maxBatchBuffer {
			s.ebuf = nil
		}
		if cap(s.items) > 2*maxBatchItems {
			s.items, s.undo = nil, nil
		}
	}()
	if final && s.copyPart {
		// The client ended the COPY before this Sync.
		s.mu.Lock()
		s.copyPart, s.copyPartStatus, s.copyPartDone, s.copyPartErr = false, 0, false, false
		s.mu.Unlock()
	}
	us := &s.unit
	if us.skipping {
		s.revertStmts(0)
		if final {
			st, left := us.st, us.procLeft
			s.unit = unitState{}
			if left && s.procGate != nil {
				// A procedure sent before the Sync, not waited for when the error ended the
				// request (fail).
				if _, err := s.awaitLeft(ctx, policyFor(*s.procGate), st); err != nil {
					return err
				}
			}
			return s.emitRFQ(st)
		}
		return nil
	}
	pol := s.policy()
	for i := range s.items {
		switch it := &s.items[i]; {
		case it.typ == 'B' && it.info.manyCalls && pol.readOnly:
			it.info = unknownStmt // as a Bind of a write (handleExt)
		case pastKeptCalls(it.info.kind, it.info.manyCalls, pol):
			it.info.kind = kindWrite
		}
	}
	u := &extUnit{buf: s.ebuf, items: s.items}
	neutral := true
	for _, it := range s.items {
		if k := it.info.kind; k != kindEmpty && k != kindRead && k != kindSavepoint || it.info.ownObject != "" ||
			it.info.prepareMakes || it.info.explainMakes || it.info.fromCurrent != "" || it.info.makesRW && pol.readOnly {
			// Not a read that passes as it is: LOCK or PREPARE … AS naming a table of
			// Tandem's, and PREPARE … AS SELECT … INTO, are refused (walk), and in read-only
			// modes SET TRANSACTION READ WRITE and its kin.
			neutral = false
		}
	}
	if !us.open {
		if neutral && !pol.fenced && !s.readOnlyChange(pol) && !s.lexWait {
			// Reads pass without waiting for earlier requests: pipelines stay pipelined.
			s.noteAll(u)
			if final {
				s.push(&pending{fwd: true, fwdRFQ: true})
			} else {
				// The status is not known (walk learns it).
				s.unit = unitState{open: true, pipelined: pipelineAfter(u, 0, u.n(), false)}
				s.notePartWrite(u, 0, u.n(), 0)
			}
			s.bw.Write(s.ebuf)
			return s.bw.Flush()
		}
		st, err := s.barrier()
		if errors.Is(err, errCopyOpen) {
			s.bw.Write(s.ebuf) // the deferred reset empties it
			return s.bw.Flush()
		}
		if err != nil {
			return err
		}
		s.lexWait = false
		if st == 'I' {
			if refused, err := s.startUnit(pol, final); refused || err != nil {
				if refused {
					s.revertStmts(0)
				}
				return err
			}
		}
		*us = unitState{open: true, st: st}
		if !needsWork(u, st, pol, s.readOnlyChange(pol)) {
			s.noteAll(u)
			if final {
				s.push(&pending{fwd: true, fwdRFQ: true})
				s.unit = unitState{}
			} else {
				// The part runs unanswered: what it leaves (a ROLLBACK, an error) is not known
				// until a later part learns it (walk).
				us.st, us.assumed = 0, statusAfter(u, 0, u.n(), st)
				us.pipelined = pipelineAfter(u, 0, u.n(), false)
				s.noteCopyPart(u, 0, u.n(), false, st)
				s.notePartWrite(u, 0, u.n(), st)
			}
			s.bw.Write(s.ebuf)
			return s.bw.Flush()
		}
	}
	err := s.walk(ctx, u, us, pol, final)
	for _, it := range s.items {
		if it.typ == 'E' {
			// A COMMIT before it, run by the shim, parsed the kept statements again (forgotten
			// at its Execute, before the request ran) that a DEALLOCATE ALL ended.
			s.forgetKeptFor(it.info.names)
		}
	}
	return err
}

// note records what a statement that runs in the open transaction makes of it (DESIGN §5.3): a
// write (so its commit consults the peer), one that cannot be prepared, temporary objects. walk
// notes each statement as it passes it, after the commit of any transaction before it.
func (s *session) note(info stmtInfo) {
	s.sessionTemp = s.sessionTemp || info.temp
	if info.unprepName != "" {
		s.unprepNames[info.unprepName] = true
	}
	if info.unprep || (info.execName != "" && s.unprepNames[info.execName]) {
		s.txUnprep, s.unprepAt = true, s.pushSeq
	}
	if info.kind.writes() || info.kind == kindNoTxBlock {
		s.txWrote, s.wroteAt = true, s.pushSeq
	}
	if info.holdWrite {
		s.txHold, s.holdAt = true, s.pushSeq
	}
	switch info.kind {
	case kindDDL:
		s.ranDDL = true
	case kindCommit:
		if s.ranDDL {
			s.shim.funcs.noteDDLCommit()
		}
		s.ranDDL = false
	case kindRollback:
		s.ranDDL = false
	}
	switch {
	case info.kind == kindBegin:
		s.begun, s.begunAt = true, s.pushSeq
	case info.kind == kindEmpty, info.kind == kindSavepoint, info.kind == kindCommit, info.kind == kindRollback,
		info.kind == kindRead && info.noSnapshot:
		// Nothing that takes a snapshot or writes: a Parse, Describe or Bind of a read, a
		// savepoint, SET LOCAL, SET TRANSACTION, SET CONSTRAINTS, SHOW; the end of a
		// transaction.
	default:
		s.ran, s.ranAt = true, s.pushSeq
	}
	s.roSetByClient = s.roSetByClient || info.setsRO
	if info.changesRO {
		// Put back on before the next transaction in read-only modes (readOnlyChange).
		s.readOnlySet = false
	}
}

// noteAll notes every step of a request passed through whole (it commits nothing on its way):
// a ROLLBACK (AND CHAIN) ends the transaction the steps before it ran in.
func (s *session) noteAll(u unit) {
	for i := 0; i < u.n(); i++ {
		info := u.info(i)
		s.note(info)
		if k := info.kind; k == kindRollback || k == kindCommit {
			s.txUnprep, s.txWrote, s.txHold = false, false, false
		}
	}
}

// txFlags returns txUnprep and txWrote, each false when the transaction it was noted in has
// ended since (see unprepAt). It is exact once the replies to the requests before the open
// transaction's last part have come; before, a flag of an ended transaction may still count.
func (s *session) txFlags() (unprep, wrote bool) {
	s.mu.Lock()
	idle := s.idleSeq
	s.mu.Unlock()
	return s.txUnprep && s.unprepAt >= idle, s.txWrote && s.wroteAt >= idle
}

// txQuiet tells whether the open transaction ran nothing but its BEGIN (and statements that take
// no snapshot and write nothing: note), as txFlags tells its flags. Its COMMIT then passes as
// it is: there is nothing to check, and a check, a query, would take a snapshot — which in a
// SERIALIZABLE READ ONLY DEFERRABLE transaction waits for a safe one as long as another
// session holds a serializable read-write transaction open, where PostgreSQL commits at once.
func (s *session) txQuiet() bool {
	s.mu.Lock()
	idle := s.idleSeq
	s.mu.Unlock()
	return s.begun && s.begunAt >= idle && !(s.ran && s.ranAt >= idle)
}

// txHoldWrite returns txHold, false when the transaction it was noted in has ended since (as
// txFlags).
func (s *session) txHoldWrite() bool {
	s.mu.Lock()
	idle := s.idleSeq
	s.mu.Unlock()
	return s.txHold && s.holdAt >= idle
}

// unit is a request split into steps: the statements of a Query, or extended-protocol messages.
type unit interface {
	n() int
	info(i int) stmtInfo
	// empty reports whether steps [lo, hi) need not be sent at all.
	empty(lo, hi int) bool
	// send writes steps [lo, hi) to the backend, queued as p (nil: no reply awaited). A part
	// that does not end the request gets a terminator of its own (an extra Sync). A part whose
	// result the caller waits for (p.res set) is not flushed: wait flushes it, with whatever
	// the caller pipelines behind it.
	send(s *session, lo, hi int, last bool, p *pending) error
}

type queryUnit struct {
	text  string
	sts   []statement
	infos []*stmtInfo // info's results, made once per statement (walk asks for them many times)
}

func (u *queryUnit) n() int { return len(u.sts) }
func (u *queryUnit) info(i int) stmtInfo {
	if u.infos == nil {
		u.infos = make([]*stmtInfo, len(u.sts))
	}
	if si := u.infos[i]; si != nil {
		return *si
	}
	si := u.makeInfo(i)
	u.infos[i] = &si
	return si
}

func (u *queryUnit) makeInfo(i int) stmtInfo {
	st := u.sts[i]
	si := stmtInfo{kind: st.Kind, chain: st.Chain, temp: st.Temp, unprep: st.Unpreparable, holdWrite: st.Hold && st.Kind.writes(), copyIn: st.CopyIn, proc: st.Proc,
		blockOnly: st.BlockOnly, setsRO: setsReadOnly(u.text, st), changesRO: changesReadOnly(u.text, st), noSnapshot: noSnapshot(u.text, st),
		savepoint: savepointCommand(u.text, st), makesRW: makesReadWrite(u.text, st)}
	if st.Kind == kindDDL {
		si.text = ddlText(u.text[st.Start:st.End])
		if f := st.Finalize; f.end != 0 {
			si.text = ddlText(u.text[st.Start:f.start] + u.text[f.end:st.End])
		}
	}
	si.shipAfter, si.addsDefault, si.mayUnkey, si.retypes = shipAfterText(u.text, st), st.AddsDefault, st.MayUnkey, st.Retypes
	si.explainMakes, si.prepareMakes, si.explainExec = st.ExplainMakes, st.PrepareMakes, explainExecName(u.text, st)
	si.fromCurrent = fromCurrentRefusalOf(u.text, st)
	si.detached = detachedText(u.text, st)
	si.execName, si.unprepName = execNameOf(u.text, st), unprepNameOf(u.text, st)
	si.ownObject = ownObjectRefusal(u.text, st)
	if si.ownObject == "" {
		si.ownObject = reservedNameRefusal(u.text, st)
	}
	return si
}

// shipAfterText is the statement st of query as recorded in tandem.ddl after it ran outside a
// transaction block: CREATE or DROP INDEX, or ALTER TABLE … DETACH PARTITION, without
// CONCURRENTLY, which the peer runs in the
// transaction that ships it (the peer serves no one, so its lock harms nobody); "" for any
// other statement.
func shipAfterText(query string, st statement) string {
	c := st.Concurrently
	if c.end == 0 {
		return ""
	}
	return ddlText(query[st.Start:c.start] + query[c.end:st.End])
}

// detachedText is the partition an ALTER TABLE … DETACH PARTITION … CONCURRENTLY statement st
// of query detaches, as written; "" for any other statement.
func detachedText(query string, st statement) string {
	d := st.Detached
	if d.end == 0 {
		return ""
	}
	return strings.TrimSpace(query[d.start:d.end])
}

// ddlText is a DDL statement as recorded in tandem.ddl: without surrounding space and semicolon.
func ddlText(s string) string {
	return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";"))
}
func (u *queryUnit) empty(lo, hi int) bool {
	for i := lo; i < hi; i++ {
		if u.sts[i].Kind != kindEmpty {
			return false
		}
	}
	return true
}
func (u *queryUnit) send(s *session, lo, hi int, _ bool, p *pending) error {
	if p == nil {
		p = &pending{fwd: true, fwdRFQ: true}
	}
	if at := u.sts[lo].Start; at > 0 {
		p.shift = s.textChars(u.text[:at])
	}
	return s.sendQuery(u.text[u.sts[lo].Start:u.sts[hi-1].End], p, p.res == nil)
}

// textChars is how many characters PostgreSQL counts in t, text of the client's, in an error's
// position: t's runes in UTF8, its bytes in an encoding of one byte per character, and 0 (no
// shift) in the others.
func (s *session) textChars(t string) int32 {
	s.mu.Lock()
	enc := s.clientEnc
	s.mu.Unlock()
	switch {
	case enc == "UTF8":
		return int32(utf8.RuneCountInString(t))
	case enc == "SQL_ASCII", strings.HasPrefix(enc, "EUC_"), enc == "MULE_INTERNAL", enc == "":
		// SQL_ASCII is counted in the database's encoding.
		return 0
	}
	return int32(len(t))
}

// shiftPosition returns body, an ErrorResponse's, with its position moved by shift characters
// (pending.shift).
func shiftPosition(body []byte, shift int32) []byte {
	var e pgproto3.ErrorResponse
	if e.Decode(body) != nil || e.Position == 0 {
		return body
	}
	e.Position += shift
	b, err := e.Encode(nil)
	if err != nil {
		return body
	}
	return b[5:]
}

type extUnit struct {
	buf   []byte
	items []item
}

func (u *extUnit) n() int              { return len(u.items) }
func (u *extUnit) info(i int) stmtInfo { return u.items[i].info }
func (u *extUnit) empty(lo, hi int) bool {
	for i := lo; i < hi; i++ {
		if u.items[i].typ != 'S' {
			return false
		}
	}
	return true
}
func (u *extUnit) send(s *session, lo, hi int, last bool, p *pending) error {
	if p != nil {
		s.push(p)
	}
	if s.unit.roFresh && hasExecute(u, lo, hi) {
		s.unit.roFresh = false
	}
	if hi > lo {
		s.bw.Write(u.buf[u.items[lo].lo:u.items[hi-1].hi])
	}
	if !last {
		s.bw.Write([]byte{'S', 0, 0, 0, 4})
	}
	if p != nil && p.res != nil {
		return nil
	}
	return s.bw.Flush()
}

// needsWork reports whether a request starting in status st needs more than passing through.
//
// roChange: the session's default_transaction_read_only must change for pol before its next
// transaction (readOnlyChange); a ROLLBACK with steps after it then needs walk, which puts it
// right before them.
func needsWork(u unit, st byte, pol policy, roChange bool) bool {
	if !pol.intercept {
		return false
	}
	wrap := wrapFrom(u)
	for i := 0; i < u.n(); i++ {
		info := u.info(i)
		roChange = roChange || pol.readOnly && info.changesRO
		switch k := info.kind; {
		case k == kindRollback && !info.chain && roChange && i+1 < u.n():
			return true
		case k == kindCommit, k == kindClient2PC:
			return true
		case info.ownObject != "":
			// Refused wherever it comes (walk): in a transaction block, beside a statement
			// that cannot run in one, or taken for a read (LOCK, PREPARE … AS INSERT).
			return true
		case info.explainMakes || info.prepareMakes || info.fromCurrent != "":
			// Refused wherever it comes (walk), in every mode: a statement prepared while the
			// site is read-only may run once it is master.
			return true
		case info.makesRW && pol.readOnly:
			// Refused wherever it comes (walk).
			return true
		case info.explainExec != "" && pol.recordDDL():
			// EXPLAIN ANALYZE EXECUTE, refused when what it runs makes a table (walk).
			return true
		case info.proc && st == 'I' && !pol.readOnly:
			// It passes the commit gate, and in dual mode its reply waits until the peer has
			// what the procedure committed (walk).
			return true
		case k.writes() && st == 'I' && pol.wrap && i >= wrap:
			return true
		case k == kindNoTxBlock && st == 'I' && pol.readOnly:
			// Refused or run with default_transaction_read_only put back (walk).
			return true
		case k == kindDDL && st != 'I' && pol.recordDDL():
			// DDL in an open transaction block gets its tandem.ddl row from walk.
			return true
		case info.shipAfter != "" && st == 'I' && pol.recordDDL():
			// CREATE/DROP INDEX or DETACH PARTITION … CONCURRENTLY gets its tandem.ddl row once it ran (walk).
			return true
		case k == kindBegin:
			st = 'T'
		case k == kindRollback:
			st = 'I'
			if info.chain {
				st = 'T'
			}
		}
	}
	return false
}

// lastTxControl returns the index of the last step in [lo, hi) that changes the transaction
// block state, or lo-1.
func lastTxControl(u unit, lo, hi int) int {
	for i := hi - 1; i >= lo; i-- {
		if u.info(i).kind.txControl() {
			return i
		}
	}
	return lo - 1
}

// statusAfter is the status after steps [lo, hi) of u, run from status st, when none fails; 0
// (not known) stays 0 unless a step begins or ends a transaction block.
func statusAfter(u unit, lo, hi int, st byte) byte {
	for i := lo; i < hi; i++ {
		switch info := u.info(i); info.kind {
		case kindBegin:
			st = 'T'
		case kindCommit, kindRollback, kindClient2PC:
			st = 'I'
			if info.chain {
				st = 'T'
			}
		}
	}
	return st
}

func hasCopyIn(u unit, lo, hi int) bool {
	for i := lo; i < hi; i++ {
		if u.info(i).copyIn {
			return true
		}
	}
	return false
}

// copyEndsExt tells whether steps [lo, hi) of u are an extended request's whose last Execute
// runs a COPY FROM STDIN with nothing after it but the client's Sync (unitState.copyGoesOn).
func copyEndsExt(u unit, lo, hi int) bool {
	e, ok := u.(*extUnit)
	if !ok || hi <= lo || e.items[hi-1].typ != 'S' {
		return false
	}
	for i := hi - 2; i >= lo; i-- {
		if it := e.items[i]; it.typ == 'E' {
			return it.info.copyIn
		} else if it.typ != 'H' {
			return false
		}
	}
	return false
}

// wrapFrom returns the first step of u from which writes are wrapped (n: none), those before
// being sent as they are for a statement in the request that cannot run in a transaction
// block (DESIGN §5.3), which the shim's BEGIN would make fail: any in a simple Query, whose
// statements share one implicit transaction block; in an extended request, the last one (a
// write before it rolls back, as PostgreSQL fails it after an Execute in its implicit
// transaction), or any procedure (CALL, DO with COMMIT or CALL: its implicit transaction goes on after
// it, the write in it; the request's reply waits for the peer, lastPartProc — or a COMMIT's
// after it does, procPart, and writes after that COMMIT are wrapped again) or statement run
// CONCURRENTLY that is recorded once it ran (lastPartShipAfter). Any other commits at once, and
// a write after it begins a new implicit transaction, which walk wraps as any other
// (noTxBefore).
func wrapFrom(u unit) int {
	_, ext := u.(*extUnit)
	from := 0
	for i := 0; i < u.n(); i++ {
		switch info := u.info(i); {
		case info.kind == kindNoTxBlock && info.proc:
			from = u.n()
		case info.kind == kindNoTxBlock && (!ext || info.shipAfter != ""):
			return u.n()
		case info.kind == kindNoTxBlock:
			from = i + 1
		case info.kind == kindCommit && from == u.n():
			// The COMMIT ends the implicit transaction the procedure's goes on in, waiting
			// until the peer has it (procPart); a write after it begins a new one.
			from = i + 1
		}
	}
	return from
}

// noTxBefore returns the index of the last step in [lo, hi) that cannot run in a transaction
// block, or lo-1.
func noTxBefore(u unit, lo, hi int) int {
	for i := hi - 1; i >= lo; i-- {
		if u.info(i).kind == kindNoTxBlock {
			return i
		}
	}
	return lo - 1
}

// walk runs a request step by step (DESIGN §5.1, §5.3): it opens an implicit write transaction
// with an injected BEGIN, replaces a COMMIT of a transaction by the commit procedure, refuses
// client-issued two-phase commands, and sends everything else in as few parts as it can. A part
// that precedes a decision gets its own terminator, so the shim learns the status and whether it
// failed; after an error the rest of the request is dropped, as PostgreSQL would skip it.
func (s *session) walk(ctx context.Context, u unit, us *unitState, pol policy, final bool) error {
	s.walking = us
	defer func() { s.walking = nil }()
	n := u.n()
	lo := 0
	drop := false // the next part converts an implicit transaction with the client's BEGIN
	wrap := wrapFrom(u)

	// part sends steps [lo, hi) with a terminator and waits; failed: the error reached the client.
	part := func(hi int) (failed bool, err error) {
		if u.empty(lo, hi) && us.st != 0 {
			lo = hi
			return false, nil
		}
		p := &pending{fwd: true, drop25001: drop, res: make(chan result, 1)}
		if err := u.send(s, lo, hi, false, p); err != nil {
			return false, err
		}
		r, err := s.wait(p)
		if err != nil {
			return false, err
		}
		lo, drop, us.st = hi, false, r.status
		return r.err != nil, nil
	}

	// shipLeft waits, once the status is known, until the peer has what a procedure of the
	// request committed (us.procLeft) — also when the request ends in a transaction block, or
	// a failed one, that a BEGIN after the procedure opened; a wait in vain reaches the client
	// as 08007.
	shipLeft := func() error {
		if !us.procLeft || us.st == 0 {
			return nil
		}
		us.procLeft = false
		_, err := s.awaitLeft(ctx, s.procPolicy(pol), us.st)
		return err
	}

	// fail ends the request after a failed part or a refusal: the steps from lo on are dropped
	// unsent, so what they did to the prepared statements' records is undone.
	fail := func(err error) error {
		if _, ok := u.(*extUnit); ok {
			s.revertStmts(lo)
		}
		if err == nil && us.procLeft {
			if us.injected && us.st == 'E' {
				if _, err := s.capture("ROLLBACK"); err != nil {
					return err
				}
				us.injected, us.st = false, 'I'
			}
			if err := shipLeft(); err != nil {
				return err
			}
		}
		return s.endAfterError(us, final, err)
	}
	// own runs a statement of the shim's in the client's transaction: its error is the
	// client's, which fails the request as a step's would.
	own := func(q string, args ...string) (failed bool, err error) {
		r, err := s.capture(q, args...)
		if err != nil || r.err == nil {
			return false, err
		}
		us.st = r.status
		return true, s.emit(r.err)
	}
	// settle sends the unsent steps before step i up to the last one that changes the
	// transaction state, with a terminator — even none of them when the status is not known
	// (an earlier part of the request went unanswered): us.st is then the status at step i, as
	// the steps between can only fail, which skips step i too.
	settle := func(i int) (failed bool, err error) {
		last := lastTxControl(u, lo, i)
		if last < lo && us.st != 0 {
			return false, nil
		}
		return part(last + 1)
	}

	// begin learns the status for a write at step i where it is not known: after a part sent
	// unanswered (before a Flush), with no step that changes the transaction state since. The
	// terminator settle sends would end the implicit transaction that part runs in, and with it
	// its portals and SET LOCALs, which the steps after may use as PostgreSQL lets them. Where
	// that transaction is implicit (us.assumed, or the status the requests before leave), the
	// shim's BEGIN goes in before the terminator: the block is then the shim's, as when it
	// injects one at the start of a request. A 25001 warning says the block was open already.
	// Elsewhere, and behind a COPY FROM STDIN in a block, settle: a terminator keeps an
	// explicit block. A COPY in the implicit transaction (copyPartImplicit: a procedure before
	// it) is no exception: settle's terminator committed it partway through the request
	// (TestCopyPartImplicitThenFlushedWrite).
	begin := func(i int) (failed bool, err error) {
		a := us.assumed
		if a == 0 && !s.copyPart {
			if a, err = s.barrier(); errors.Is(err, errCopyOpen) {
				a = 0
			} else if err != nil {
				return false, err
			}
		}
		if a != 'I' || s.copyPart && !s.copyPartImplicit {
			return settle(i)
		}
		if j := firstBlockOnly(u, lo, i); j >= 0 {
			// PostgreSQL fails it outside a transaction block (25P01), as it does here.
			return part(j + 1)
		}
		p := &pending{fwd: true, ownBegin: true, res: make(chan result, 1)}
		if err := s.sendBegin(p); err != nil {
			return false, err
		}
		r, err := s.wait(p)
		if err != nil {
			return false, err
		}
		us.st = r.status
		if r.begun && !r.warned {
			// The transaction holds the steps sent before too (noted already).
			us.injected = true
			if pol.readOnly && s.readOnlyChange(pol) {
				// It began after a step that may have turned default_transaction_read_only off
				// (DISCARD ALL, which commits at once), where no terminator could put it back
				// on: the block is made read-only itself, so that PostgreSQL refuses the write
				// as on a session read-only by default.
				if err := s.swallow("SET TRANSACTION READ ONLY"); err != nil {
					return false, err
				}
			}
		}
		return r.err != nil, nil
	}

	// beginBehind sends the unsent steps before step i with the shim's BEGIN behind them and
	// its terminator (sendBegin), for step i where the status is not known: the implicit
	// transaction they run in — one a procedure among them, which must run outside a block,
	// goes on in — becomes the shim's block, which the terminator does not end, with the
	// portals made in it, as PostgreSQL runs step i in that transaction. A block open already
	// stays the client's (before, as in raise).
	beginBehind := func(i int) (failed bool, err error) {
		before := us.st
		if before == 0 {
			before = us.assumed
		}
		if before == 0 {
			if before, err = s.barrier(); err != nil && !errors.Is(err, errCopyOpen) {
				return false, err
			}
		}
		p := &pending{fwd: true, drop25001: drop, ownBegin: true, res: make(chan result, 1)}
		if err := u.send(s, lo, i, true, p); err != nil {
			return false, err
		}
		if err := s.writeBegin(); err != nil {
			return false, err
		}
		r, err := s.wait(p)
		if err != nil {
			return false, err
		}
		lo, drop, us.st = i, false, r.status
		if r.err != nil {
			return true, nil
		}
		us.injected = r.begun && !r.warned && before != 'T' && before != 'E'
		return false, nil
	}

	// raise fails step i after the steps before it, the database raising code and msg so that
	// the transaction aborts as for any error. Steps sent as they are, in no block of the
	// shim's (after a procedure, or where a statement that cannot run in a transaction block
	// follows: wrapFrom), run in an implicit transaction that PostgreSQL would roll back at
	// an error of step i: they go without a terminator of their own, the error raised in
	// their transaction — in the same simple Query, or behind the shim's BEGIN (sendBegin),
	// which makes it a block the shim then rolls back.
	raise := func(i int, code, msg string, hint ...string) (failed bool, err error) {
		_, query := u.(*queryUnit)
		if !us.injected && us.st != 'T' && us.st != 'E' {
			if last := lastTxControl(u, lo, i); last >= lo {
				// A ROLLBACK: the steps up to it end a transaction of their own.
				if failed, err := part(last + 1); err != nil || failed {
					return failed, err
				}
			}
		}
		// A COPY FROM STDIN among the steps of an extended request keeps the shim's BEGIN from
		// going behind them (the backend reads it in the COPY's copy-in); in a simple Query the
		// raise goes in the same Query, after the COPY, as after any step: sent as a Query of
		// their own, the steps committed the COPY's rows before the error
		// (TestRefusalAfterImplicitCopy).
		if us.injected || us.st == 'T' || us.st == 'E' || !query && hasCopyIn(u, lo, i) || s.copyPart || (u.empty(lo, i) && (query || us.st != 0)) {
			if failed, err := part(i); err != nil || failed {
				return failed, err
			}
			return own(raiseSQL(code, msg, hint...))
		}
		// The status before the steps, where the shim's BEGIN goes in: a block the client
		// opened in a part sent unanswered (us.assumed) stays the client's. The 25001 warning
		// does not tell alone: a client that set client_min_messages above warning gets none,
		// and the shim took the client's block for its own, rolling it back at the error.
		before := us.st
		if before == 0 {
			before = us.assumed
		}
		if before == 0 && !query {
			if before, err = s.barrier(); err != nil && !errors.Is(err, errCopyOpen) {
				return false, err
			}
		}
		p := &pending{fwd: true, res: make(chan result, 1)}
		if q, ok := u.(*queryUnit); ok {
			text := q.text[q.sts[lo].Start:q.sts[i-1].End] + "\n;" + raiseSQL(code, msg, hint...)
			if at := q.sts[lo].Start; at > 0 {
				// An error's position in the steps counts from the client's text, as in
				// queryUnit.send (TestRefusalAfterImplicitCopyErrorPosition).
				p.shift = s.textChars(q.text[:at])
			}
			if err := s.sendQuery(text, p, false); err != nil {
				return false, err
			}
		} else {
			p.ownBegin = true
			if err := u.send(s, lo, i, true, p); err != nil {
				return false, err
			}
			if err := s.writeBegin(); err != nil {
				return false, err
			}
		}
		r, err := s.wait(p)
		if err != nil {
			return false, err
		}
		lo, drop, us.st = i, false, r.status
		if r.err != nil || query {
			return true, nil
		}
		// A block failed before ('E') that the BEGIN ran in was recovered by a ROLLBACK TO
		// SAVEPOINT in the part: the client's too.
		us.injected = r.begun && !r.warned && before != 'T' && before != 'E'
		if failed, err = own(raiseSQL(code, msg, hint...)); err != nil {
			return failed, err
		}
		if us.injected && us.st == 'E' {
			// Rolled back now, so that what a procedure before committed can be waited for.
			if _, err := s.capture("ROLLBACK"); err != nil {
				return failed, err
			}
			us.injected, us.st = false, 'I'
		}
		return failed, nil
	}

	// refuse fails step i after the steps before it (raise) and ends the request. A procedure
	// run outside a transaction block before it passes the commit gate, and the reply waits
	// until the peer has what it committed (procPart), as when no error follows it.
	var refuse func(i int, code, msg string, hint ...string) error
	refuse = func(i int, code, msg string, hint ...string) error {
		if !pol.readOnly && hasProc(u, lo, i) && !us.injected && us.st != 'T' && us.st != 'E' {
			j := firstProc(u, lo, i)
			stale, _, err := s.procPart(ctx, pol, func() (bool, byte, error) {
				failed, err := raise(i, code, msg, hint...)
				return failed, us.st, err
			})
			if !stale && err == nil && us.st == 'I' {
				us.procLeft = false // waited for (procPart)
			}
			if stale {
				return refuse(j, "25006", fmt.Sprintf("tandem: this site is no longer master of term %d; procedure not run", pol.term))
			}
			return fail(err)
		}
		_, err := raise(i, code, msg, hint...)
		return fail(err)
	}

	// warn gives the client, for step j (from lo) that PostgreSQL warns of in the implicit
	// transaction of an extended request (warnsOutside) and that runs in the shim's block, the
	// warning PostgreSQL would send, after the replies to the steps before it.
	warn := func(j int) (failed bool, err error) {
		if failed, err := part(j); err != nil || failed {
			return failed, err
		}
		return false, s.emit(noTransactionWarning(u.info(j).warnsOutside + " can only be used in transaction blocks"))
	}

	// blockOne opens the shim's block for steps [from, to) of a simple Query, the next part
	// sent (lo is from), when they are one statement: sent alone it would run outside any
	// transaction block, where PostgreSQL runs it in the query's implicit block (the query has
	// more statements) — LOCK and DECLARE then failed (25P01), VACUUM and its kin, which
	// PostgreSQL refuses there (25001), ran, and SET LOCAL, SET TRANSACTION and SET
	// CONSTRAINTS got a warning (25P01) that PostgreSQL does not give. In the shim's block they run, or fail, as in
	// PostgreSQL's, which the end of the request, or the COMMIT after them, then ends (as for a
	// write it wraps). atCommit: the steps are those before a COMMIT, noted already; a
	// procedure (CALL, DO with COMMIT or CALL) is taken only then.
	blockOne := func(from, to int, atCommit bool) error {
		q, ok := u.(*queryUnit)
		if !ok || lo != from || us.st != 'I' || us.injected {
			return nil
		}
		j := -1
		for k := from; k < to; k++ {
			if q.sts[k].Kind == kindEmpty {
				continue
			}
			if j >= 0 {
				return nil // several: sent together, in an implicit block of their own
			}
			j = k
		}
		if j < 0 {
			return nil
		}
		if info := u.info(j); info.blockOnly == "" && (info.kind != kindNoTxBlock || info.proc && !atCommit) &&
			warnsOutsideBlock(q.text, q.sts[j]) == "" {
			return nil
		}
		if err := s.swallow("BEGIN"); err != nil {
			return err
		}
		us.injected, us.st = true, 'T'
		s.txUnprep, s.txWrote, s.txHold = false, false, false
		if atCommit {
			// Noted again in the new transaction, as the steps before a write it wraps are: a
			// procedure is a write, which the COMMIT must commit dual.
			s.note(u.info(j))
		}
		return nil
	}
	// blockAlone is blockOne for what follows step i of a simple Query, split right after i (a
	// COMMIT the shim runs, or a ROLLBACK or the COMMIT of a failed transaction after which
	// default_transaction_read_only is put back).
	blockAlone := func(i int) error { return blockOne(i+1, n, false) }

	recordDDL := pol.recordDDL()
	_, ext := u.(*extUnit)
	for i := 0; i < n; i++ {
		info := u.info(i)
		k := info.kind
		if ext && info.proc && !pol.readOnly && us.st != 'T' && us.st != 'E' &&
			(us.st != 0 || us.assumed != 'T' && us.assumed != 'E') {
			// A procedure of an extended request, maybe outside a transaction block: it
			// commits by itself, and the implicit transaction it leaves open commits at the
			// Sync, both outside the commit procedure. In a part sent before the Sync (after a
			// Flush), or sent by a part below before the request's end (a terminator before
			// DDL, where the status is not known), it would go past the gate: it passes it
			// here as one at the request's end does (lastPartProc), and stays counted there
			// until the request's reply, which waits until the peer has what it committed
			// (procLeft). One that comes through after the role was given up is refused. A
			// later one, the session counted already, is waited for too: a wait since (a COMMIT
			// after the first, procPart) did not cover it.
			if s.procGate == nil {
				cur, err := s.enterSlow(ctx, pol)
				if err != nil {
					return err
				}
				if cur == nil {
					s.shim.gate.leaveSlow(s)
					return refuse(i, "25006", fmt.Sprintf("tandem: this site is no longer master of term %d; procedure not run", pol.term))
				}
				s.procGate = cur
			}
			us.procLeft = true
		}
		if k == kindCommit && pol.intercept {
			// The statement before a COMMIT the shim runs (which splits the Query there), when
			// it is the only one since the last split, runs in the Query's implicit block, not
			// alone (blockOne) — a procedure too, which PostgreSQL fails there if it commits
			// (2D000), and whose writes the COMMIT then commits dual. Before the checks below:
			// COMMIT AND CHAIN fails in that block.
			if err := blockOne(lo, i, true); err != nil {
				return err
			}
		}
		if k.writes() && us.st != 'T' && us.st != 'E' && pol.wrap && i >= wrap && !us.injected {
			// A write never runs outside a transaction block, nor with the status unknown:
			// settle learns it, and BEGIN goes in right before the write — before its Bind in
			// the extended protocol, as the unnamed portal a Bind makes outside a block ends
			// with the implicit transaction, at the next Sync. The unsent steps between (reads,
			// Parse/Describe) run inside the transaction.
			if j := noTxBefore(u, lo, i); j >= lo {
				// VACUUM, DISCARD ALL …: PostgreSQL commits it at once, the write after it
				// beginning a new implicit transaction: it goes in before the shim's BEGIN,
				// with a terminator, which ends nothing it left.
				if failed, err := part(j + 1); err != nil || failed {
					return fail(err)
				}
				if us.st == 'I' {
					// The write's transaction begins under what the steps left of
					// default_transaction_read_only (DISCARD ALL turns it off).
					if err := s.reassertReadOnly(pol); err != nil {
						return err
					}
				}
			}
			if us.st == 0 && lastTxControl(u, lo, i) < lo {
				if failed, err := begin(i); err != nil || failed {
					return fail(err)
				}
			}
			if failed, err := settle(i); err != nil || failed {
				return fail(err)
			}
			if j := firstBlockOnly(u, lo, i); j >= 0 && us.st == 'I' {
				// PostgreSQL fails it outside a transaction block (25P01), with the steps
				// before it: it goes in without the shim's BEGIN.
				if failed, err := part(j + 1); err != nil || failed {
					return fail(err)
				}
			}
			if us.st == 'I' && !aloneBlockOnly(u, i) {
				if !pol.readOnly {
					// A ROLLBACK before may have ended a transaction begun while the site was
					// read-only: the write's begins under the client's own setting.
					if err := s.reassertReadOnly(pol); err != nil {
						return err
					}
				}
				if err := s.swallow("BEGIN"); err != nil {
					return err
				}
				us.injected, us.st = true, 'T'
				// A new transaction: it holds the unsent steps from lo on, not what came before.
				s.txUnprep, s.txWrote, s.txHold = false, false, false
				for j := lo; j < i; j++ {
					s.note(u.info(j))
				}
				for j := lo; j < i; j++ {
					if u.info(j).warnsOutside != "" {
						if failed, err := warn(j); err != nil || failed {
							return fail(err)
						}
					}
				}
			}
		}
		if k == kindSavepoint && us.injected {
			// The block is the shim's own: the client's request has none, and PostgreSQL
			// refuses savepoints there, naming the command.
			cmd := info.savepoint
			if cmd == "" {
				cmd = "SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT"
			}
			return refuse(i, "25P01", cmd+" can only be used in transaction blocks")
		}
		if info.ownObject != "" && pol.intercept {
			return refuse(i, "42501", info.ownObject)
		}
		if info.makesRW && pol.readOnly {
			// As a hot standby refuses it: a transaction that began read-only (the session's
			// default, readOnlyChange) stays so, and every write in it fails (25006) before it
			// runs — nextval and setval too, which the check at COMMIT could not undo.
			return refuse(i, "25006", fmt.Sprintf("tandem: this site is %s: cannot set transaction read-write mode", pol.mode))
		}
		if pol.intercept && info.explainMakes || recordDDL && info.explainExec != "" && s.makesTable(info.explainExec) {
			return refuse(i, "0A000", explainMakesRefusal, explainMakesHint)
		}
		if info.prepareMakes && pol.intercept {
			return refuse(i, "0A000", prepareMakesRefusal, prepareMakesHint)
		}
		if info.fromCurrent != "" && pol.intercept {
			return refuse(i, "0A000", info.fromCurrent, fromCurrentHint)
		}
		if info.chain && us.injected && (k == kindCommit || k == kindRollback) {
			// The block is the shim's: PostgreSQL fails COMMIT and ROLLBACK AND CHAIN in the
			// client's implicit transaction, rolling back its writes, where in the shim's they
			// would end it (committing them) and leave the session in a new one.
			name := "COMMIT AND CHAIN"
			if k == kindRollback {
				name = "ROLLBACK AND CHAIN"
			}
			return refuse(i, "25P01", name+" can only be used in transaction blocks")
		}
		if _, ext := u.(*extUnit); ext && info.blockOnly != "" && us.injected {
			// The extended protocol has no implicit transaction block: PostgreSQL refuses LOCK
			// and DECLARE there, which in the shim's block would run, the lock or cursor
			// vanishing at the shim's commit.
			return refuse(i, "25P01", info.blockOnly+" can only be used in transaction blocks")
		}
		if info.warnsOutside != "" && us.injected {
			if failed, err := warn(i); err != nil || failed {
				return fail(err)
			}
		}
		if k == kindNoTxBlock && pol.readOnly && us.st != 'T' && us.st != 'E' && !noTxAsSent(u, us, lo, i) {
			// Read-only modes (DESIGN §5.1): statements that cannot run in a transaction block
			// are never wrapped, so the check at commit does not see them.
			if failed, err := settle(i); err != nil || failed {
				return fail(err)
			}
			if lo > 0 {
				// A simple Query split (settle) after its transaction control (a ROLLBACK, a
				// COMMIT that met no transaction), this statement the only one left: it runs, or
				// fails, in the shim's block, as in PostgreSQL's implicit one (25001), not alone
				// (TestReadOnlyRollbackThenAloneStatement).
				if err := blockAlone(lo - 1); err != nil {
					return err
				}
			}
			switch {
			case us.st != 'I':
			case info.proc:
				// CALL, or DO with COMMIT or CALL: a procedure runs transactions of its own and may
				// turn default_transaction_read_only off between them, so it is refused. The
				// unsent steps before it go too, as PostgreSQL rolls back the implicit
				// transaction they share on an error.
				if err := s.emitError("25006", fmt.Sprintf("tandem: this site is %s: CALL and DO blocks that commit are refused outside a transaction block", pol.mode)); err != nil {
					return err
				}
				return fail(nil)
			default:
				// Any other is one utility command, which PostgreSQL refuses in a read-only
				// transaction if it writes: default_transaction_read_only goes back on right
				// before it (the client may have turned it off), and again at the next request
				// (DISCARD ALL turns it off). Once it is back on, only a statement of the
				// client's can turn it off: it is sent again before the next such command of the
				// request after an Execute (noTxAsSent), a SET and a COMMIT possibly among them.
				if err := s.forceReadOnly(); err != nil {
					return err
				}
				us.roFresh, s.readOnlySet = true, false
			}
		}
		s.note(info)
		if e, ext := u.(*extUnit); ext && k == kindNoTxBlock && info.changesRO && pol.readOnly && us.st == 'I' &&
			e.items[i].typ == 'E' && (hasExecute(e, i+1, n) || !final) {
			// DISCARD ALL, which commits at once and turns default_transaction_read_only off:
			// the next Execute of the request (here, or after a Flush) begins a transaction of
			// its own, and a statement the lexer takes for a read runs unwrapped, some of which
			// write (nextval, setval). The setting goes back on in between, as at the next
			// request.
			if failed, err := part(i + 1); err != nil || failed {
				return fail(err)
			}
			if us.st == 'I' {
				if err := s.reassertReadOnly(pol); err != nil {
					return err
				}
				us.roFresh = true
			}
		}
		// A procedure among the unsent steps of an extended request, which wrapFrom leaves
		// unwrapped, goes on in an implicit transaction that the status before it ('I') does
		// not tell of: DDL after it runs there in PostgreSQL.
		procBefore := ext && k == kindDDL && us.st == 'I' && !us.injected && hasProc(u, lo, i)
		if k == kindDDL && recordDDL && (us.st != 'I' || procBefore) {
			// DESIGN §5.2: the statement is written to tandem.ddl in its transaction just before
			// it runs, so the apply side meets it in order with the row changes.
			if e, ext := u.(*extUnit); ext && (us.st == 0 || procBefore) && !us.injected && !s.copyPart && e.items[i].typ == 'E' {
				if _, check := portalToCheck(u, lo, i); !check {
					// The status is not known (a part went unanswered), or a procedure before
					// left an implicit transaction open — either way begin did not run (wrapFrom
					// leaves the steps after a procedure unwrapped) — and the statement's Bind
					// is among the unsent steps: a terminator there would end the implicit
					// transaction and the unnamed portal with it (34000), where PostgreSQL runs
					// the statement in that transaction.
					if failed, err := beginBehind(i); err != nil || failed {
						return fail(err)
					}
				}
			}
			if failed, err := part(i); err != nil || failed {
				return fail(err)
			}
			// Noted again: the statement runs after the part, in the transaction after its
			// reply, which may have ended the one it was noted in (txFlags).
			s.note(info)
			// The row goes in with the mark that lets the statement's DDL past the event
			// trigger (ddlGuardSQL), in one statement: DDL the shim does not record — inside a
			// DO block, a function or a procedure — is refused there.
			marked := false
			if us.st == 'T' {
				q, args := ddlMarkSQL, []string{info.text}
				if info.detached != "" {
					// DETACH PARTITION … FINALIZE: recorded without FINALIZE, with the CHECK
					// constraint the concurrent detach's first step added (ddlMarkFinalizeSQL).
					q, args = ddlMarkFinalizeSQL, []string{info.text, info.detached}
				}
				// Under the session's user: a role the client set (SET ROLE) has no rights on
				// tandem.ddl, where PostgreSQL runs its DDL all the same. The role is put back
				// for the statement (local to the transaction, as a SET ROLE of the
				// client's keeps its scope: the local value is the one in force).
				sw, err := s.sendAuth(asSessionUserSQL, false)
				if err != nil {
					return err
				}
				r, err := s.capture(s.viaStepHook(q), args...)
				if err != nil {
					return err
				}
				if swr, err := s.wait(sw); err != nil {
					return err
				} else if swr.err != nil {
					r.err = swr.err // the row's statement failed for the aborted transaction
				}
				if r.err != nil {
					us.st = r.status
					return fail(s.emit(r.err))
				}
				// Waited for: its error is the client's, and no step of the client's may run
				// in the transaction it aborted, failing for that (25P02).
				bk, err := s.sendAuth(roleBackSQL, true)
				if err != nil {
					return err
				}
				if br, err := s.wait(bk); err != nil {
					return err
				} else if br.err != nil {
					us.st = br.status
					return fail(s.emit(br.err))
				}
				marked = true
			}
			if us.st == 'T' && info.retypes {
				// The new values it computes for the rows there must come out the same on the
				// peer (ddlcheck.go): checked before it runs, while the columns have the types
				// its expressions were written for.
				if q := retypeCheckSQL(info.text); q != "" {
					if failed, err := own(q); err != nil || failed {
						return fail(err)
					}
				}
			}
			if us.st == 'T' {
				// A LIKE of a temporary table would copy other columns on the peer (ddlcheck.go).
				if q := likeTempCheckSQL(info.text); q != "" {
					if failed, err := own(q); err != nil || failed {
						return fail(err)
					}
				}
			}
			if us.st == 'T' && (info.addsDefault || info.mayUnkey || hasClockLiteral(info.text)) {
				// The statement runs alone, then what it did is checked (ddlcheck.go): the
				// columns it adds must not give the rows there values each database computes
				// for itself, the definitions it makes must not hold a clock literal's moment,
				// and the tables it leaves without a key get REPLICA IDENTITY FULL.
				before, err := s.capture(afterDDLBeforeSQL(info.addsDefault, info.mayUnkey, info.text))
				if err != nil {
					return err
				}
				if before.err == nil && len(before.row) == 3 {
					if failed, err := part(i + 1); err != nil || failed {
						return fail(err)
					}
					if us.st == 'T' {
						before, err = s.capture(afterDDLSQL(info.addsDefault, info.mayUnkey, info.text, string(before.row[0]), string(before.row[1]), string(before.row[2])))
						if err != nil {
							return err
						}
					}
				}
				if before.err != nil {
					us.st = before.status
					if err := s.emit(before.err); err != nil {
						return err
					}
					return fail(nil)
				}
			}
			if marked && us.st == 'T' && !(final && us.injected && u.empty(i+1, n)) {
				// The mark ends with the statement (its own statements above ran under it):
				// DDL inside a later statement of the transaction is not recorded. Not needed
				// when the shim's commit follows at once, which ends it.
				if lo <= i {
					if failed, err := part(i + 1); err != nil || failed {
						return fail(err)
					}
				}
				if us.st == 'T' {
					if err := s.swallow(ddlUnmarkSQL); err != nil {
						return err
					}
				}
			}
		}
		if k == kindBegin && pol.intercept && !pol.readOnly && !us.injected && us.st != 'T' && us.st != 'E' && hasProc(u, lo, i) {
			// A procedure ran outside a transaction block before this BEGIN, which makes the
			// implicit transaction it goes on in the block: it passes the commit gate, sent
			// with the steps up to the BEGIN (procPart; the terminator after the BEGIN ends no
			// transaction), and the reply waits until the peer has what it committed, once the
			// block ended (shipLeft).
			stale, failed, err := s.procPart(ctx, pol, func() (bool, byte, error) {
				failed, err := part(i + 1)
				return failed, us.st, err
			})
			if stale {
				return refuse(firstProc(u, lo, i), "25006", fmt.Sprintf("tandem: this site is no longer master of term %d; procedure not run", pol.term))
			}
			if err != nil || failed {
				return fail(err)
			}
			us.procLeft = true
		}
		switch {
		case k == kindBegin:
			if us.injected {
				// The steps before it run first, in the shim's block: one that fails ends the
				// request with that block rolled back (fail), the session idle as PostgreSQL
				// leaves it after its implicit transaction failed — sent with the BEGIN, a
				// failure before it left a failed block the client never began.
				portal, check := portalToCheck(u, lo, i)
				if failed, err := part(i); err != nil || failed {
					return fail(err)
				}
				// PostgreSQL turns an implicit transaction into an explicit one at BEGIN without
				// a warning; the injected BEGIN makes it warn, so drop that.
				drop = true
				if check {
					// Its portal may have ended with a transaction before this one: PostgreSQL
					// then fails the Execute (34000), and the implicit transaction with it. The
					// Execute goes alone, the shim's block rolled back (fail) when it fails. No
					// query of the shim's goes before it: its snapshot would make a BEGIN
					// ISOLATION LEVEL, or a SET TRANSACTION after it, fail (25001).
					p := &pending{fwd: true, drop25001: true, res: make(chan result, 1)}
					if err := u.send(s, lo, i+1, false, p); err != nil {
						return err
					}
					r, err := s.wait(p)
					if err != nil {
						return err
					}
					lo, drop, us.st = i+1, false, r.status
					if r.err != nil {
						return fail(nil)
					}
					if r.tag != "BEGIN" && r.tag != "START TRANSACTION" {
						return &protocolError{fmt.Sprintf("an Execute of portal %q, bound in an earlier transaction and since taken by a cursor, is not supported", portal)}
					}
				}
				us.injected = false
			}
			us.st = 'T'
		case k == kindRollback:
			if us.injected {
				// The block is the shim's: it ends it, and the client's ROLLBACK then meets no
				// transaction, as in PostgreSQL's implicit one, which answers it with a
				// warning (25P01). The steps before it run first, and may fail.
				if failed, err := part(afterLastExecute(u, lo, i)); err != nil || failed {
					return fail(err)
				}
				if us.st == 'T' {
					if err := s.swallow("ROLLBACK"); err != nil {
						return err
					}
				}
			}
			// AND CHAIN begins the next transaction block at once.
			us.injected, us.st = false, 'I'
			if info.chain {
				us.st = 'T'
			}
			s.txUnprep, s.txWrote, s.txHold = false, false, false
			if !info.chain && i+1 < n && s.readOnlyChange(pol) {
				// The steps after it begin a transaction of their own, under the setting of
				// default_transaction_read_only the mode wants, as after a COMMIT: the one that
				// ended may have begun in another mode (a demotion, a promotion meanwhile), or
				// the steps before may have turned it off. A statement the lexer takes for a
				// read runs unwrapped, and some write (nextval, setval).
				if failed, err := part(i + 1); err != nil || failed {
					return fail(err)
				}
				if us.st == 'I' {
					if err := s.reassertReadOnly(pol); err != nil {
						return err
					}
				}
				if err := blockAlone(i); err != nil {
					return err
				}
			}
		case k == kindClient2PC && pol.intercept:
			return refuse(i, "0A000", "tandem: PREPARE TRANSACTION, COMMIT PREPARED and ROLLBACK PREPARED are reserved to Tandem's dual commit")
		case k == kindCommit && pol.intercept && s.txQuiet():
			// Nothing ran since the transaction's BEGIN: the COMMIT goes as it is (txQuiet), and
			// PostgreSQL answers it — a portal gone included — as without the shim.
			if failed, err := part(i + 1); err != nil || failed {
				return fail(err)
			}
			us.injected = false
			s.txUnprep, s.txWrote, s.txHold = false, false, false
			if us.st == 'I' {
				if err := s.reassertReadOnly(pol); err != nil {
					return err
				}
			}
			if err := blockAlone(i); err != nil {
				return err
			}
		case k == kindCommit && pol.intercept:
			if !pol.readOnly && hasProc(u, lo, i) && us.st != 'T' && us.st != 'E' {
				// A procedure ran outside a transaction block in the implicit transaction this
				// COMMIT ends, unwrapped (wrapFrom): it goes as the last part of a request
				// would (lastPartProc), past the gate, the COMMIT's reply waiting until the peer
				// has what it committed.
				stale, failed, err := s.procPart(ctx, pol, func() (bool, byte, error) {
					failed, err := part(i)
					return failed, us.st, err
				})
				if stale {
					return refuse(firstProc(u, lo, i), "25006", fmt.Sprintf("tandem: this site is no longer master of term %d; procedure not run", pol.term))
				}
				if us.st == 'I' {
					us.procLeft = false // waited for (procPart)
				}
				if err != nil || failed {
					return fail(err)
				}
			}
			var cs *commitStart
			portal, check := portalToCheck(u, lo, i)
			if !check && (!u.empty(lo, i) || us.st == 0) && !s.commitLocal(pol, s.commitReadOnly()) && !hasCopyIn(u, lo, i) {
				// A dual commit's first step (a read) goes right behind the part before the
				// COMMIT, saving a round trip: when the part fails or ends the transaction, it
				// fails too or reads nothing, and is collected here.
				var failed bool
				var err error
				if cs, failed, err = s.partAndStart(u, lo, i, drop, us, pol, info.chain); err != nil {
					return err
				}
				lo, drop = i, false
				if failed {
					return fail(nil)
				}
			} else if failed, err := part(i); err != nil || failed {
				return fail(err)
			}
			if us.st == 'I' && boundInPart(u, i) {
				// No transaction: the part's terminator ended the implicit one its Bind ran in,
				// and the portal with it. The shim answers as PostgreSQL would have.
				lo = i + 1
				if info.chain {
					if err := s.emitError("25P01", "COMMIT AND CHAIN can only be used in transaction blocks"); err != nil {
						return err
					}
					return fail(nil)
				}
				if err := s.emit(noTransactionWarning("there is no transaction in progress"), &pgproto3.CommandComplete{CommandTag: []byte("COMMIT")}); err != nil {
					return err
				}
			}
			if us.st != 'T' {
				// Aborted (COMMIT rolls back) or idle (a warning): PostgreSQL answers itself.
				if us.st == 'E' && i+1 < n && s.readOnlyChange(pol) {
					// Rolled back, as by a ROLLBACK: the steps after it begin a transaction
					// under the setting the mode wants.
					if failed, err := part(i + 1); err != nil || failed {
						return fail(err)
					}
				}
				if us.st == 'I' {
					// The part's terminator committed the steps before: the next transaction
					// begins with what they left of default_transaction_read_only.
					if err := s.reassertReadOnly(pol); err != nil {
						return err
					}
				}
				us.injected, us.st = false, 'I'
				s.txUnprep, s.txWrote, s.txHold = false, false, false
				if err := blockAlone(i); err != nil {
					return err
				}
				continue
			}
			if check {
				// Its portal may have ended with a transaction before this one: PostgreSQL then
				// fails the Execute, and the transaction with it.
				gone, err := s.portalGone(portal, kindCommit)
				if err != nil {
					return err
				}
				if gone {
					if _, err := own(raiseSQL("34000", fmt.Sprintf("portal %q does not exist", portal))); err != nil {
						return err
					}
					return fail(nil)
				}
			}
			if us.injected {
				// The block is the shim's: PostgreSQL warns that the client's COMMIT meets no
				// transaction block, and commits its implicit transaction.
				if err := s.emit(noTransactionWarning("there is no transaction in progress")); err != nil {
					return err
				}
			}
			// The ParameterStatus messages of the commit's statements (a SET LOCAL's value
			// ending at PREPARE TRANSACTION) follow its CommandComplete, as PostgreSQL sends
			// them, just before ReadyForQuery.
			s.cmu.Lock()
			s.tagHeld = []heldMsg{}
			s.cmu.Unlock()
			var ok bool
			var err error
			if cs != nil {
				ok, err = s.finishCommit(ctx, pol, cs, true, info.chain)
			} else {
				ok, err = s.commitProc(ctx, pol, true, info.chain)
			}
			if herr := s.emitHeld(nil, true); err == nil {
				err = herr
			}
			if err != nil {
				return err
			}
			us.injected, us.st = false, 'I'
			if !ok {
				return fail(nil)
			}
			if info.chain {
				us.st = 'T'
			} else {
				// The steps after the COMMIT begin a transaction of their own, under what the
				// committed one left of default_transaction_read_only.
				if err := s.reassertReadOnly(pol); err != nil {
					return err
				}
			}
			lo = i + 1
			if !info.chain {
				if err := blockAlone(i); err != nil {
					return err
				}
			}
		}
	}

	if !final {
		// A Flush (or a full buffer): send the rest as it is; the request goes on, its status
		// now unknown until the next part learns it.
		if lo < n {
			if us.st != 0 {
				// The status after the steps, which the loop followed through BEGIN and ROLLBACK.
				us.assumed, us.pipelined = us.st, false
			}
			us.st, us.pipelined = 0, pipelineAfter(u, lo, n, us.pipelined)
			s.noteCopyPart(u, lo, n, us.injected, us.assumed)
			s.notePartWrite(u, lo, n, us.assumed)
			return u.send(s, lo, n, true, nil)
		}
		return nil
	}
	// goesOn: the request went on after its COPY's CopyDone (unitState.wentOn): it stays open.
	goesOn := false
	defer func() {
		if !goesOn {
			*us = unitState{}
		}
	}()
	if !us.injected {
		if !u.empty(lo, n) || us.st == 0 {
			if recordDDL && hasShipAfter(u, lo, n) && !noTxRefused(u, us, lo, firstShipAfter(u, lo, n)) {
				if _, ext := u.(*extUnit); ext && !shipAfterAlone(u, lo, n) {
					// Marked as DDL the shim records (ddlGuardSQL) for the whole part, the
					// statements behind it in the pipeline would be too; an index built and then
					// refused would stay on this database only.
					return refuse(lo, "0A000", "tandem: CREATE or DROP INDEX CONCURRENTLY or ALTER TABLE … DETACH PARTITION … CONCURRENTLY must be the only statement executed before its Sync")
				}
				// It is recorded in tandem.ddl, committed plainly in a transaction of its own
				// after it ran: it passes the gate as a procedure does (below), so that a hold
				// stops it and a handover's Drain waits for it, its record and its reply's wait
				// for the peer — else "released" could go out before the record, and the next
				// master's schema lack it. One that comes through after the role was given up is
				// refused before it runs.
				cur, err := s.enterSlow(ctx, pol)
				if err != nil {
					return err
				}
				defer s.shim.gate.leaveSlow(s)
				if cur == nil {
					return refuse(firstShipAfter(u, lo, n), "25006", fmt.Sprintf("tandem: this site is no longer master of term %d; statement not run", pol.term))
				}
				// What is not recorded is told before it runs (notRecordedSQL), and not judged.
				skip, bad, lookup, err := s.shipAfterSkipped(u, lo, n)
				if err != nil {
					return err
				}
				if lookup != nil {
					return refuse(bad, "0A000", fmt.Sprintf("tandem: whether the statement's table or index is a temporary one (whose DDL does not reach the peer) could not be told (%s): refused", lookup.Message),
						"Run it where the session may read pg_catalog.pg_class.")
				}
				// A clock literal's moment in the index is checked before it is built (ddlcheck.go).
				for i := lo; i < n; i++ {
					if skip[i] {
						continue
					}
					if q := cicClockCheckSQL(u.info(i).shipAfter); q != "" {
						r, err := s.capture(q)
						if err != nil {
							return err
						}
						if r.err != nil {
							return refuse(i, r.err.Code, r.err.Message, r.err.Hint)
						}
					}
				}
				return s.lastPartShipAfter(ctx, u, lo, n, drop, skip, policyFor(*cur))
			}
			if !pol.readOnly && hasProc(u, lo, n) {
				// A procedure commits what it wrote itself, outside the commit procedure: it
				// passes the gate as a commit does, so that a hold (catch-up) stops it and a
				// handover's Drain waits for it and its reply's wait for the peer. One that
				// comes through after the role was given up is refused.
				cur, err := s.enterSlow(ctx, pol)
				if err != nil {
					return err
				}
				defer s.shim.gate.leaveSlow(s)
				if cur == nil {
					return refuse(firstProc(u, lo, n), "25006", fmt.Sprintf("tandem: this site is no longer master of term %d; procedure not run", pol.term))
				}
				return s.lastPartProc(ctx, u, lo, n, drop, policyFor(*cur))
			}
			if us.procLeft {
				p := &pending{fwd: true, drop25001: drop, res: make(chan result, 1)}
				if err := u.send(s, lo, n, true, p); err != nil {
					return err
				}
				// Also when the request ends in a block a BEGIN after the procedure opened.
				r, err := s.wait(p)
				if err != nil {
					return err
				}
				if _, err := s.awaitLeft(ctx, s.procPolicy(pol), r.status); err != nil {
					return err
				}
				return s.emitRFQ(r.status)
			}
			p := &pending{fwd: true, fwdRFQ: true, drop25001: drop}
			return u.send(s, lo, n, true, p)
		}
		if err := shipLeft(); err != nil {
			return err
		}
		return s.emitRFQ(us.st)
	}
	// The end of an implicit transaction the shim opened.
	var cs *commitStart
	// The last CommandComplete of a Query (and the ParameterStatus after it), held back until
	// the commit succeeded.
	var held []heldMsg
	if !u.empty(lo, n) || us.st == 0 {
		_, query := u.(*queryUnit)
		p := &pending{fwd: true, drop25001: drop, holdTag: query, res: make(chan result, 1)}
		if err := u.send(s, lo, n, true, p); err != nil {
			return err
		}
		// The commit's first step goes right behind the statements: when they fail, it fails
		// too and is collected below. Not behind a COPY FROM STDIN, which reads the client's
		// data from the same stream; nor in solo mode, where that step is the COMMIT itself,
		// which must pass the gate first (HoldCommits, in commitProc).
		var err error
		if !hasCopyIn(u, lo, n) && pol.mode != ModeSolo {
			if cs, err = s.startCommit(pol, false, false); err != nil {
				return err
			}
		}
		us.copyGoesOn = copyEndsExt(u, lo, n)
		r, err := s.wait(p)
		us.copyGoesOn = false
		if err != nil {
			return err
		}
		if us.wentOn {
			// The client sent more of the request after the COPY's CopyDone, before its Sync:
			// PostgreSQL runs it in the COPY's transaction, here the shim's block, which the
			// commit at the request's Sync ends (TestWrappedExtCopyDoneThenExtWrite).
			us.wentOn, goesOn = false, true
			us.st = r.status
			return nil
		}
		us.st, held = r.status, r.held
		if cs != nil && (r.err != nil || us.st != 'T') {
			if us.st, err = s.abandonCommit(cs); err != nil {
				return err
			}
			cs = nil
		}
	}
	if held != nil && us.st != 'T' {
		if err := s.emitHeld(held, true); err != nil {
			return err
		}
		held = nil
	}
	switch us.st {
	case 'T':
		if held != nil {
			// The commit's ParameterStatus messages wait behind the held ones (emitHeld).
			s.cmu.Lock()
			s.tagHeld = []heldMsg{}
			s.cmu.Unlock()
			defer func() {
				s.cmu.Lock()
				s.tagHeld = nil
				s.cmu.Unlock()
			}()
		}
		var ok bool
		var err error
		if cs == nil {
			ok, err = s.commitProc(ctx, pol, false, false)
		} else {
			ok, err = s.finishCommit(ctx, pol, cs, false, false)
		}
		if err != nil {
			return err
		}
		if err := s.emitHeld(held, ok); err != nil {
			return err
		}
	case 'E':
		if _, err := s.capture("ROLLBACK"); err != nil {
			return err
		}
	}
	us.st = 'I'
	if err := shipLeft(); err != nil {
		return err
	}
	return s.emitRFQ('I')
}

// leaveProcGate leaves the commit gate that a procedure sent before its request's Sync passed
// (procGate).
func (s *session) leaveProcGate() {
	if s.procGate != nil {
		s.procGate = nil
		s.shim.gate.leaveSlow(s)
	}
}

// awaitLeft waits until the peer has what a procedure of the request committed (procLeft), in
// a mode that uses the peer, the session's status now st: outside a transaction block
// (awaitShipped), or in one a BEGIN after the procedure opened, maybe failed
// (awaitShippedInBlock).
func (s *session) awaitLeft(ctx context.Context, pol policy, st byte) (told bool, err error) {
	if !pol.peer {
		return false, nil
	}
	switch st {
	case 'I':
		return s.awaitShipped(ctx, pol, 0)
	case 'T', 'E':
		return s.awaitShippedInBlock(ctx, pol, st)
	}
	return false, nil
}

// procPolicy is pol, or the policy of the mode a procedure sent before the request's Sync
// passed the commit gate in (procGate): its reply waits for the peer as that mode says.
func (s *session) procPolicy(pol policy) policy {
	if s.procGate != nil {
		return policyFor(*s.procGate)
	}
	return pol
}

// enterSlow passes the commit gate for what may commit outside the commit procedure and run
// long (a procedure, a fast-path call, a statement recorded in tandem.ddl after it ran),
// counted as slow (commitGate.enterProc): a hold stops it, a handover's Drain waits for it.
// Unless err, the caller leaves the gate (leaveSlow) once it and its reply's wait for the peer
// are done. The mode is returned, or nil — counted as refused — when the site is no longer
// master (dual or solo) of pol's term.
func (s *session) enterSlow(ctx context.Context, pol policy) (*modeState, error) {
	idle, err := s.passGate(ctx, true)
	if err != nil {
		return nil, err
	}
	// Put back before what the gate let through is sent (see passGate).
	if err := s.idleRestore(idle); err != nil {
		s.shim.gate.leaveSlow(s)
		return nil, err
	}
	cur := *s.shim.mode.Load()
	if cur.term != pol.term || (cur.mode != ModeDual && cur.mode != ModeSolo) {
		s.shim.stats.refused.Add(1)
		return nil, nil
	}
	return &cur, nil
}

// procPart sends a part of a request that holds a procedure run outside a transaction block
// (send: it returns whether the part failed, and the status after it) past the commit gate, as
// lastPartProc does, and, when the part leaves no transaction open, waits until the peer has
// what it committed (awaitShipped) — also when the part failed: the procedure may have
// committed before the error. stale: the site is no longer master of pol's term, and nothing
// was sent; failed: the client got an error (the part's, or 08007).
func (s *session) procPart(ctx context.Context, pol policy, send func() (bool, byte, error)) (stale, failed bool, err error) {
	cur, err := s.enterSlow(ctx, pol)
	if err != nil {
		return false, false, err
	}
	defer s.shim.gate.leaveSlow(s)
	if cur == nil {
		return true, false, nil
	}
	failed, st, err := send()
	if err != nil {
		return false, failed, err
	}
	if st == 'I' && policyFor(*cur).peer {
		// Also after an error: the procedure may have committed before it.
		told, err := s.awaitShipped(ctx, policyFor(*cur), 0)
		return false, failed || told, err
	}
	return false, failed, nil
}

// lastPartProc sends the last part of a request that runs CALL outside a transaction block in
// dual or solo mode, past the commit gate (walk). A procedure may commit writes of its own,
// plainly (it runs outside the dual commit, as a statement that cannot run in a transaction
// block); in dual mode the request's ReadyForQuery waits until the peer has all that was
// committed before it (awaitShipped), so that what the client saw committed survives a
// failover.
func (s *session) lastPartProc(ctx context.Context, u unit, lo, n int, drop bool, pol policy) error {
	p := &pending{fwd: true, drop25001: drop, res: make(chan result, 1)}
	if err := u.send(s, lo, n, true, p); err != nil {
		return err
	}
	return s.replyOnceShipped(ctx, p, pol)
}

// lastPartShipAfter sends the last part of a request with CREATE or DROP INDEX CONCURRENTLY
// or ALTER TABLE … DETACH PARTITION … CONCURRENTLY
// (which succeeds only alone in its request, outside a transaction block). Once it ran, the
// statement without CONCURRENTLY is recorded in tandem.ddl in a transaction of its own, with
// the time it started (the peer may take as long again, see ddlExtra), and the reply waits
// until the peer has it, as a procedure's does: an index, a unique one above all, is on both
// databases before the client hears it was made.
//
// The statement runs marked as DDL the shim records (ddlGuardSQL), for the session as it runs
// outside a transaction block, when it is alone in the part: otherwise PostgreSQL refuses it
// in the implicit transaction block of a multi-statement Query before it does anything. The
// statements skip says (shipAfterSkipped) are not recorded.
func (s *session) lastPartShipAfter(ctx context.Context, u unit, lo, n int, drop bool, skip map[int]bool, pol policy) error {
	start := time.Now()
	// DETACH PARTITION … CONCURRENTLY adds a CHECK constraint to the partition: the ones it
	// has before, so that the new one is recorded for the peer, whose plain DETACH does not.
	checks := make(map[int]string)
	for i := lo; i < n; i++ {
		if part := u.info(i).detached; part != "" && u.info(i).shipAfter != "" {
			rr, err := s.capture(checksBeforeDetachSQL, part)
			if err != nil {
				return err
			}
			if rr.err == nil && len(rr.row) == 1 {
				checks[i] = string(rr.row[0])
			} else {
				s.shim.log.Warn("txshim: the partition of a DETACH PARTITION … CONCURRENTLY was not found: the CHECK constraint it gets is not recorded for the peer",
					"partition", part, "err", rr.err)
			}
		}
	}
	// A CREATE INDEX … CONCURRENTLY that fails after it made its index leaves that index,
	// invalid, here only: the invalid indexes before it, to find such a leftover by.
	// Only a statement alone in its part makes an index (otherwise PostgreSQL refuses it first),
	// and only the index it names (or, unnamed, one) on its table is its leftover (cicTarget).
	invalidBefore, creates, nCreates := "", false, 0
	var target cicIndex
	for i := lo; i < n; i++ {
		if t := u.info(i).shipAfter; t != "" && u.info(i).detached == "" && len(t) >= 6 && strings.EqualFold(t[:6], "CREATE") {
			nCreates++
			target, creates = cicTarget(t)
		}
	}
	if nCreates != 1 {
		creates = false
	}
	if creates {
		rr, err := s.capture(invalidIndexesSQL)
		if err != nil {
			return err
		}
		if rr.err != nil || len(rr.row) != 1 {
			creates = false
		} else {
			invalidBefore = string(rr.row[0])
		}
	}
	mark := shipAfterAlone(u, lo, n)
	if mark {
		if err := s.swallow("SELECT pg_catalog.set_config('tandem.ddl', 'on', false)"); err != nil {
			return err
		}
	}
	p := &pending{fwd: true, drop25001: drop, res: make(chan result, 1)}
	if err := u.send(s, lo, n, true, p); err != nil {
		return err
	}
	r, err := s.wait(p)
	if err != nil {
		return err
	}
	if mark {
		if err := s.swallow("SELECT pg_catalog.set_config('tandem.ddl', '', false)"); err != nil {
			return err
		}
	}
	if r.err == nil && r.status == 'I' {
		for i := lo; i < n; i++ {
			text := u.info(i).shipAfter
			if text == "" || skip[i] {
				continue
			}
			at := start.UTC().Format(time.RFC3339Nano)
			// In a transaction of its own, under the session's user: a role the client set
			// (SET ROLE) has no rights on tandem.ddl (asSessionUserSQL).
			if err := s.swallow("BEGIN"); err != nil {
				return err
			}
			sw, err := s.sendAuth(asSessionUserSQL, false)
			if err != nil {
				return err
			}
			var rr result
			if before, ok := checks[i]; ok {
				rr, err = s.capture(recordDetachSQL, text, at, u.info(i).detached, before)
			} else {
				rr, err = s.capture("INSERT INTO tandem.ddl (stmt, at) VALUES ($1, $2)", text, at)
			}
			if err != nil {
				return err
			}
			if swr, err := s.wait(sw); err != nil {
				return err
			} else if swr.err != nil {
				rr.err = swr.err // the INSERT failed for the aborted transaction
			}
			// Its COMMIT ends the switch to the login user (pending.quietAuth).
			cp := &pending{res: make(chan result, 1), quietAuth: true, quietAuthEnd: true}
			if err := s.sendOwn("COMMIT", cp, true); err != nil {
				return err
			}
			if cr, err := s.wait(cp); err != nil {
				return err
			} else if rr.err == nil {
				rr.err, rr.status = cr.err, cr.status
			} else {
				rr.status = cr.status
			}
			if rr.err != nil {
				// The index is made here and not recorded for the peer: say so.
				s.shim.log.Error("txshim: a statement run CONCURRENTLY is not recorded for the peer; run it there by hand", "stmt", text, "err", rr.err)
				if err := s.emit(rr.err); err != nil {
					return err
				}
				return s.emitRFQ(rr.status)
			}
		}
		if pol.peer {
			if _, err := s.awaitShipped(ctx, pol, 0); err != nil {
				return err
			}
		}
	}
	if r.err != nil && r.status == 'I' && creates {
		if err := s.dropFailedIndex(ctx, invalidBefore, target, pol); err != nil {
			return err
		}
	}
	return s.emitRFQ(r.status)
}

// invalidIndexesSQL lists the invalid indexes (oids, comma-separated); leftIndexSQL is the DROP
// INDEX IF EXISTS of one not among those ($1) that no other session is building (a CREATE
// INDEX CONCURRENTLY of another session in progress, or one whose index it cannot see), a
// plain index (a partitioned one is invalid by design until its partitions' are attached, and
// CONCURRENTLY cannot make one) on the table $2 (as written) named $3 (any name when it is empty).
const (
	invalidIndexesSQL = `SELECT COALESCE(pg_catalog.string_agg(indexrelid::pg_catalog.text, ','), '') FROM pg_catalog.pg_index WHERE NOT indisvalid`
	leftIndexSQL      = `SELECT pg_catalog.format('DROP INDEX IF EXISTS %I.%I', n.nspname, c.relname)
FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
WHERE NOT x.indisvalid AND NOT x.indexrelid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array($1, ','))
  AND c.relkind OPERATOR(pg_catalog.=) 'i' AND x.indrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($2)
  AND ($3 OPERATOR(pg_catalog.=) '' OR c.relname OPERATOR(pg_catalog.=) $3::pg_catalog.name)
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_stat_progress_create_index g WHERE g.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()
    AND (g.index_relid IS NULL OR g.index_relid OPERATOR(pg_catalog.=) ANY (ARRAY[0, x.indexrelid])))
LIMIT 1`
)

// dropFailedIndex drops the index a failed CREATE INDEX … CONCURRENTLY left here, invalid (one
// not among before, invalidIndexesSQL's list from before it ran), in a transaction of its own
// with the DROP INDEX IF EXISTS recorded for the peer, which never had it. Such a leftover was
// on the local database only — the sites differed, and the DROP INDEX that clears it was refused
// as a divergence, the peer having no such index (TestFailedConcurrentIndexDropped). The client
// already has the statement's error; a failure here is logged, the index left as it is.
func (s *session) dropFailedIndex(ctx context.Context, before string, target cicIndex, pol policy) error {
	rr, err := s.capture(leftIndexSQL, before, target.table, target.name)
	if err != nil {
		return err
	}
	if rr.err != nil || len(rr.row) != 1 {
		return nil
	}
	stmt := string(rr.row[0])
	if err := s.swallow("BEGIN"); err != nil {
		return err
	}
	fail := func(e *pgproto3.ErrorResponse) error {
		s.shim.log.Warn("txshim: the invalid index a failed CREATE INDEX CONCURRENTLY left is not dropped; it is on this database only", "stmt", stmt, "err", e.Message)
		_, err := s.capture("ROLLBACK")
		return err
	}
	// Recorded under the session's user (a role the client set has no rights on tandem.ddl),
	// dropped under the client's role, as the statement ran.
	sw, err := s.sendAuth(asSessionUserSQL, false)
	if err != nil {
		return err
	}
	mr, err := s.capture(ddlMarkSQL, stmt)
	if err != nil {
		return err
	}
	if swr, err := s.wait(sw); err != nil {
		return err
	} else if swr.err != nil {
		mr.err = swr.err
	}
	bk, err := s.sendAuth(roleBackSQL, true)
	if err != nil {
		return err
	}
	br, err := s.wait(bk)
	if err != nil {
		return err
	}
	if mr.err != nil {
		return fail(mr.err)
	}
	if br.err != nil {
		return fail(br.err)
	}
	// DROP INDEX locks the table exclusively: behind a transaction that holds any lock on it
	// that request would keep the client's reply waiting, and every statement on the table
	// queued behind it, for as long as that transaction runs (TestFailedConcurrentIndexDropNoWait).
	if lr, err := s.capture(dropLockTimeoutSQL); err != nil {
		return err
	} else if lr.err != nil {
		return fail(lr.err)
	}
	if dr, err := s.capture(stmt); err != nil {
		return err
	} else if dr.err != nil {
		return fail(dr.err)
	}
	if cr, err := s.capture("COMMIT"); err != nil {
		return err
	} else if cr.err != nil {
		s.shim.log.Warn("txshim: the invalid index a failed CREATE INDEX CONCURRENTLY left is not dropped; it is on this database only", "stmt", stmt, "err", cr.err.Message)
		return nil
	}
	if pol.peer {
		if _, err := s.awaitShipped(ctx, pol, 0); err != nil {
			return err
		}
	}
	return nil
}

// dropLockTimeoutSQL bounds, for the open transaction, the wait of dropFailedIndex's DROP INDEX
// for its lock to a second (less when the session's lock_timeout is less).
const dropLockTimeoutSQL = `SELECT pg_catalog.set_config('lock_timeout', '1s', true)
WHERE pg_catalog.current_setting('lock_timeout')::pg_catalog.interval OPERATOR(pg_catalog.=) '0'
  OR pg_catalog.current_setting('lock_timeout')::pg_catalog.interval OPERATOR(pg_catalog.>) '1s'`

// shipAfterSkipped tells, of the statements run CONCURRENTLY in the part lo..n-1, those that
// are not recorded for the peer, nor judged before they run:
//   - A temporary table's DDL does not reach the peer (ddlGuardSQL), which has no such table:
//     an index made on one, or dropped from one (TestConcurrentIndexOnTempTableNotRecorded).
//   - CREATE INDEX … IF NOT EXISTS of a name a relation in the table's schema has does nothing
//     (TestConcurrentIndexIfNotExistsNoOp).
//
// Told before it runs, while the table or the index is there; one the lexer does not read, or
// not found, is recorded as before. A question that failed (a role that may not read
// pg_class, on a database that keeps it from PUBLIC) leaves its statement unjudged: its place
// bad and the error are returned, and the statement is refused rather than recorded, where it
// may be on a temporary table (TestConcurrentIndexTempLookupFailed).
func (s *session) shipAfterSkipped(u unit, lo, n int) (skip map[int]bool, bad int, lookup *pgproto3.ErrorResponse, err error) {
	skip = make(map[int]bool)
	for i := lo; i < n; i++ {
		text := u.info(i).shipAfter
		rel := concurrentRelation(text)
		if rel == "" || u.info(i).detached != "" {
			continue
		}
		name := ""
		if c, ok := cicTarget(text); ok && c.ifNotExists {
			name = c.name
		}
		rr, err := s.capture(notRecordedSQL, rel, name)
		if err != nil {
			return nil, 0, nil, err
		}
		if rr.err != nil {
			return nil, i, rr.err, nil
		}
		skip[i] = len(rr.row) == 1 && string(rr.row[0]) == "t"
	}
	return skip, 0, nil, nil
}

// notRecordedSQL tells whether the relation $1 (as written) is a temporary one, or ($2 not
// empty) a relation named $2 is in its schema.
const notRecordedSQL = `SELECT EXISTS (SELECT FROM pg_catalog.pg_class c
WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) AND c.relpersistence OPERATOR(pg_catalog.=) 't')
OR EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_class t ON t.relnamespace OPERATOR(pg_catalog.=) c.relnamespace
WHERE $2 OPERATOR(pg_catalog.<>) '' AND t.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) AND c.relname OPERATOR(pg_catalog.=) $2::pg_catalog.name)`

// concurrentRelation reads, from text, a statement run CONCURRENTLY as recorded (CONCURRENTLY
// taken out), the relation it names as written: the table of a CREATE INDEX (cicTarget), the
// index of a DROP INDEX [IF EXISTS] name; "" for anything else or what the lexer does not read.
func concurrentRelation(text string) string {
	if c, ok := cicTarget(text); ok {
		return c.table
	}
	st := sigTokens(text)
	toks, word, punct := st.toks, st.word, st.punct
	if !word(0, "DROP") || !word(1, "INDEX") {
		return ""
	}
	i := 2
	if word(i, "IF") && word(i+1, "EXISTS") {
		i += 2
	}
	from := i
	for i < len(toks) && (toks[i].kind == tokWord || toks[i].kind == tokQuoted) && !punct(i+1, '&') {
		if i++; !punct(i, '.') {
			break
		}
		i++
	}
	if i == from || punct(i-1, '.') || punct(i, ',') {
		return ""
	}
	return text[toks[from].start:toks[i-1].end]
}

// cicIndex is the index a CREATE INDEX statement makes: its name folded as PostgreSQL looks it
// up ("" when the statement gives none), its table as written (for to_regclass), and whether
// the statement says IF NOT EXISTS.
type cicIndex struct {
	name, table string
	ifNotExists bool
}

// cicTarget reads the index name and the table of text, a CREATE [UNIQUE] INDEX [IF NOT EXISTS]
// [name] ON [ONLY] table … statement (CONCURRENTLY taken out); ok false when it is not one as
// read here (a U&"…" name, say): no leftover of it is looked for then.
func cicTarget(text string) (c cicIndex, ok bool) {
	type tok struct {
		kind tokKind
		s    string
	}
	var ts []tok
	tokens(text, 0, len(text), func(k tokKind, s, e int) bool {
		if k == tokComment || (k == tokByte && isSpace(text[s])) {
			return true
		}
		ts = append(ts, tok{k, text[s:e]})
		return len(ts) < 16
	})
	word := func(i int, kw string) bool {
		return i < len(ts) && ts[i].kind == tokWord && strings.EqualFold(ts[i].s, kw)
	}
	ident := func(i int) bool {
		return i < len(ts) && (ts[i].kind == tokWord || ts[i].kind == tokQuoted) && !(ts[i].kind == tokWord && i+1 < len(ts) && ts[i+1].s == "&")
	}
	i := 0
	if !word(i, "CREATE") {
		return c, false
	}
	i++
	if word(i, "UNIQUE") {
		i++
	}
	if !word(i, "INDEX") {
		return c, false
	}
	i++
	if word(i, "IF") && word(i+1, "NOT") && word(i+2, "EXISTS") {
		i += 3
		c.ifNotExists = true
	}
	if !word(i, "ON") {
		if !ident(i) {
			return c, false
		}
		c.name = string(foldName(ts[i].s, nil))
		i++
	}
	if !word(i, "ON") {
		return c, false
	}
	i++
	if word(i, "ONLY") {
		i++
	}
	var table strings.Builder
	for {
		if !ident(i) {
			return c, false
		}
		table.WriteString(ts[i].s)
		i++
		if i >= len(ts) || ts[i].s != "." {
			break
		}
		table.WriteString(".")
		i++
	}
	c.table = table.String()
	return c, true
}

// checksBeforeDetachSQL lists the CHECK constraints of the partition $1 (as written) before an
// ALTER TABLE … DETACH PARTITION … CONCURRENTLY; recordDetachSQL records the DETACH PARTITION
// without CONCURRENTLY ($1, at $2) and then the CHECK constraints the partition $3 has that
// were not among those ($4): the one PostgreSQL added, duplicating the partition constraint.
const (
	checksBeforeDetachSQL = `SELECT COALESCE(pg_catalog.string_agg(oid::pg_catalog.text, ','), '') FROM pg_catalog.pg_constraint
WHERE conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) AND contype OPERATOR(pg_catalog.=) 'c'`
	recordDetachSQL = `INSERT INTO tandem.ddl (stmt, at)
SELECT s, $2::pg_catalog.timestamptz FROM (
  SELECT 0 AS o, $1::pg_catalog.text AS s
  UNION ALL
  SELECT 1, pg_catalog.format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s', n.nspname, c.relname, con.conname, pg_catalog.pg_get_constraintdef(con.oid))
  FROM pg_catalog.pg_constraint con JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) con.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  WHERE con.conrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($3) AND con.contype OPERATOR(pg_catalog.=) 'c'
    AND NOT con.oid::pg_catalog.text OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array($4, ','))
) x ORDER BY o`
)

// replyOnceShipped waits for the request p, which may have committed plainly, and sends its
// ReadyForQuery once the peer has all that was committed before it (awaitShipped) when it ended
// outside a transaction in a mode that uses the peer.
func (s *session) replyOnceShipped(ctx context.Context, p *pending, pol policy) error {
	r, err := s.wait(p)
	if err != nil {
		return err
	}
	if r.status == 'I' && pol.peer {
		if _, err := s.awaitShipped(ctx, pol, 0); err != nil {
			return err
		}
	}
	return s.emitRFQ(r.status)
}

// boundInPart reports whether the portal that step i of u (an Execute) runs was bound by an
// earlier step of the same part of the request, with no step that changes the transaction
// state between them.
func boundInPart(u unit, i int) bool {
	e, ok := u.(*extUnit)
	if !ok || e.items[i].typ != 'E' {
		return false
	}
	it := e.items[i]
	portal, _, _ := cString(e.buf[it.lo+5 : it.hi])
	for j := i - 1; j >= 0; j-- {
		b := e.items[j]
		if b.typ == 'B' {
			if name, _, _ := cString(e.buf[b.lo+5 : b.hi]); stmtKey(name) == stmtKey(portal) {
				return true
			}
		}
		if b.info.kind.txControl() {
			return false
		}
	}
	return false
}

// portalToCheck returns the portal that step i of u, an Execute, runs, when its Bind is not
// among steps [lo, i) with nothing between that may end a transaction or a savepoint (check
// true). Such a portal may be gone: PostgreSQL drops a transaction's portals when it ends (or
// those made since a savepoint at ROLLBACK TO), and then fails the Execute (34000), where the
// shim, for a COMMIT, would run its commit procedure, or, for a BEGIN, hand its own block to
// the client. s.portals keeps what a Bind made, not whether it still exists.
func portalToCheck(u unit, lo, i int) (portal string, check bool) {
	e, ok := u.(*extUnit)
	if !ok || e.items[i].typ != 'E' {
		return "", false
	}
	// Names as bytes, as PostgreSQL keys them (stmtKey): no allocation on the usual path.
	name := func(it item) []byte {
		b := e.buf[it.lo+5 : it.hi]
		if j := bytes.IndexByte(b, 0); j >= 0 {
			b = b[:j]
		}
		return b[:min(len(b), 63)]
	}
	p := name(e.items[i])
	for j := i - 1; j >= lo; j-- {
		b := e.items[j]
		if k := b.info.kind; b.typ == 'E' && (k.txControl() || k == kindSavepoint) {
			break
		}
		if b.typ == 'B' && bytes.Equal(name(b), p) {
			return "", false
		}
	}
	portal, _, _ = cString(e.buf[e.items[i].lo+5 : e.items[i].hi])
	return portal, true
}

// portalGone reports whether PostgreSQL no longer holds the portal a Bind made, in the
// transaction now open: pg_cursors lists the portals of the extended protocol with the cursors
// DECLARE makes, with their statement. A cursor that took the name of the portal gone cannot
// be run as PostgreSQL would (the shim knows nothing of it): the session ends. kind is what
// the shim recorded of the portal's statement.
func (s *session) portalGone(portal string, kind stmtKind) (bool, error) {
	r, err := s.capture("SELECT statement FROM pg_catalog.pg_cursors WHERE name OPERATOR(pg_catalog.=) $1", portal)
	if err != nil {
		return false, err
	}
	if r.err != nil {
		return false, fmt.Errorf("checking portal %q: %s (%s)", portal, r.err.Message, r.err.Code)
	}
	if r.row == nil {
		return true, nil
	}
	for _, st := range s.lex(string(r.row[0])) {
		if st.Kind != kindEmpty {
			if st.Kind != kind {
				break
			}
			return false, nil
		}
	}
	return false, &protocolError{fmt.Sprintf("an Execute of portal %q, bound in an earlier transaction and since taken by a cursor, is not supported", portal)}
}

// noTxAsSent reports whether step i of u, a statement that cannot run in a transaction block,
// goes to PostgreSQL as sent in a read-only mode, behind the unsent steps from lo, without the
// terminator and default_transaction_read_only = on that walk would put before it: a
// terminator ends the implicit transaction the parts of the request sent unanswered run in,
// which PostgreSQL keeps. It does for an extended request where PostgreSQL refuses or skips the
// statement anyway — in a transaction block (25001), after an error, or after an Execute in
// its implicit transaction (25001, "cannot be executed within a pipeline") — and where the
// setting was put back on in the request with no Execute since (roFresh), so it holds.
func noTxAsSent(u unit, us *unitState, lo, i int) bool {
	e, ext := u.(*extUnit)
	if !ext {
		return false
	}
	if us.roFresh && !hasExecute(e, lo, i) {
		return true
	}
	return noTxRefused(u, us, lo, i)
}

// noTxRefused reports whether PostgreSQL refuses step i of u, an extended request's statement
// that cannot run in a transaction block, as sent (25001): in a transaction block, or after an
// Execute in the implicit transaction open — one a part sent unanswered before a Flush began.
// It then goes as it is: the shim's own queries before it (lastPartShipAfter) would end that
// implicit transaction, and it would run.
func noTxRefused(u unit, us *unitState, lo, i int) bool {
	if _, ext := u.(*extUnit); !ext {
		return false
	}
	st, pipelined := us.st, false
	if st == 0 {
		st, pipelined = us.assumed, us.pipelined
	}
	return statusAfter(u, lo, i, st) == 'T' || pipelineAfter(u, lo, i, pipelined)
}

// pipelineAfter follows steps [lo, hi) of u, an extended request, from pipelined: whether an
// Execute ran in the implicit transaction they leave since it began. PostgreSQL notes that
// (XACT_FLAGS_PIPELINING) and then fails a statement that cannot run in a transaction block;
// transaction control and those statements commit at once, and the next Execute begins a
// transaction afresh; an Execute of an empty statement runs nothing.
func pipelineAfter(u unit, lo, hi int, pipelined bool) bool {
	e, ok := u.(*extUnit)
	if !ok {
		return false
	}
	for _, it := range e.items[lo:hi] {
		if it.typ != 'E' {
			continue
		}
		switch k := it.info.kind; {
		case k.txControl(), k == kindNoTxBlock:
			pipelined = false
		case k != kindEmpty:
			pipelined = true
		}
	}
	return pipelined
}

// afterLastExecute returns the index after the last Execute in steps [lo, hi) of u, or lo
// when there is none; hi for a simple Query. The steps from there to hi prepare step hi
// (Parse, Bind), which must come after what ends a transaction before it.
func afterLastExecute(u unit, lo, hi int) int {
	e, ok := u.(*extUnit)
	if !ok {
		return hi
	}
	for j := hi - 1; j >= lo; j-- {
		if e.items[j].typ == 'E' {
			return j + 1
		}
	}
	return lo
}

// hasExecute reports whether steps [lo, hi) of u, an extended request, hold an Execute.
func hasExecute(u *extUnit, lo, hi int) bool {
	for _, it := range u.items[lo:hi] {
		if it.typ == 'E' {
			return true
		}
	}
	return false
}

// firstBlockOnly returns the index of the first step in [lo, hi) of u that PostgreSQL fails
// outside a transaction block, or -1: SAVEPOINT, RELEASE or ROLLBACK TO, and in the extended
// protocol, which has no implicit block, LOCK and DECLARE without WITH HOLD too.
func firstBlockOnly(u unit, lo, hi int) int {
	_, ext := u.(*extUnit)
	for i := lo; i < hi; i++ {
		if info := u.info(i); info.kind == kindSavepoint || (ext && info.blockOnly != "") {
			return i
		}
	}
	return -1
}

// aloneBlockOnly reports whether step i of u is a LOCK or DECLARE without WITH HOLD that is
// the only statement of a simple Query: PostgreSQL then runs it outside any block and fails it
// (25P01), so it goes in without the shim's BEGIN (a DECLARE of SELECT … FOR UPDATE is a write).
func aloneBlockOnly(u unit, i int) bool {
	q, ok := u.(*queryUnit)
	if !ok || q.sts[i].BlockOnly == "" {
		return false
	}
	for j, st := range q.sts {
		if j != i && st.Kind != kindEmpty {
			return false
		}
	}
	return true
}

func hasShipAfter(u unit, lo, hi int) bool {
	for i := lo; i < hi; i++ {
		if u.info(i).shipAfter != "" {
			return true
		}
	}
	return false
}

// shipAfterAlone reports whether steps [lo, hi) of u execute nothing but statements with a
// shipAfter text (CREATE or DROP INDEX or DETACH PARTITION … CONCURRENTLY).
func shipAfterAlone(u unit, lo, hi int) bool {
	e, ext := u.(*extUnit)
	for i := lo; i < hi; i++ {
		info := u.info(i)
		switch {
		case info.shipAfter != "":
		case ext && e.items[i].typ != 'E':
		case !ext && info.kind == kindEmpty:
		default:
			return false
		}
	}
	return true
}

func hasProc(u unit, lo, hi int) bool {
	return firstProc(u, lo, hi) < hi
}

// firstShipAfter returns the index of the first step in [lo, hi) with a shipAfter text, or hi.
func firstShipAfter(u unit, lo, hi int) int {
	for i := lo; i < hi; i++ {
		if u.info(i).shipAfter != "" {
			return i
		}
	}
	return hi
}

// firstProc returns the index of the first procedure (CALL, DO with COMMIT or CALL) in [lo, hi), or hi.
func firstProc(u unit, lo, hi int) int {
	for i := lo; i < hi; i++ {
		if u.info(i).proc {
			return i
		}
	}
	return hi
}

// partAndStart sends steps [lo, hi) of u, which come before a COMMIT, with a terminator, and
// the dual commit's first step (startCommit) behind them, then waits for the part. It sets
// us.st to the status after the part; when the part failed (its error reached the client) or
// did not leave a transaction open, the commit step is collected and cs is nil.
func (s *session) partAndStart(u unit, lo, hi int, drop bool, us *unitState, pol policy, chain bool) (cs *commitStart, failed bool, err error) {
	p := &pending{fwd: true, drop25001: drop, res: make(chan result, 1)}
	if err := u.send(s, lo, hi, false, p); err != nil {
		return nil, false, err
	}
	if cs, err = s.startCommit(pol, chain, false); err != nil {
		return nil, false, err
	}
	r, err := s.wait(p)
	if err != nil {
		return nil, false, err
	}
	us.st = r.status
	if r.err != nil || r.status != 'T' {
		st, err := s.abandonCommit(cs)
		if err != nil {
			return nil, false, err
		}
		us.st = st
		return nil, r.err != nil, nil
	}
	return cs, false, nil
}

// endAfterError finishes a request whose part failed (the error already reached the client):
// an implicit transaction the shim opened is rolled back, and the client gets ReadyForQuery now
// or, for an extended request still open, at its Sync.
func (s *session) endAfterError(us *unitState, final bool, err error) error {
	if err != nil {
		return err
	}
	if us.injected && us.st == 'E' {
		if _, err := s.capture("ROLLBACK"); err != nil {
			return err
		}
		us.st = 'I'
	}
	us.injected = false
	if final {
		st := us.st
		*us = unitState{}
		return s.emitRFQ(st)
	}
	us.skipping = true
	return nil
}

// noTransactionWarning is PostgreSQL's warning (25P01) of a statement that meets no
// transaction block.
func noTransactionWarning(msg string) *pgproto3.NoticeResponse {
	return &pgproto3.NoticeResponse{Severity: "WARNING", SeverityUnlocalized: "WARNING", Code: "25P01", Message: msg}
}

// raiseSQL is a statement that fails with the given SQLSTATE and message.
func raiseSQL(code, msg string, hint ...string) string {
	h := ""
	if len(hint) > 0 {
		h = ", HINT = " + quoteLiteral(hint[0])
	}
	return fmt.Sprintf("DO $tandem$BEGIN RAISE EXCEPTION USING ERRCODE = '%s', MESSAGE = %s%s; END$tandem$",
		code, quoteLiteral(msg), h)
}

func quoteLiteral(s string) string {
	var b bytes.Buffer
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			b.WriteByte('\'')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('\'')
	return b.String()
}

// isFatal tells whether an ErrorResponse body has severity FATAL.
func isFatal(body []byte) bool {
	var e pgproto3.ErrorResponse
	return e.Decode(body) == nil && e.Severity == "FATAL"
}

// mayWriteInFlight tells whether an entry sent while the mode took writes (pending.mayWrite)
// is still unanswered.
func (s *session) mayWriteInFlight() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.partWriteLocked() {
		return true
	}
	for _, p := range s.queue {
		if p.mayWrite {
			return true
		}
	}
	return false
}
