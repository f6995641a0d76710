package txshim

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Mode is how the shim treats write transactions; the role controller sets it at any time
// (DESIGN §5.1). Changing it never breaks a session: it applies from each session's next
// transaction, and a commit checks the mode of that instant.
type Mode int32

const (
	// ModeReadOnly is a backup's shim: write transactions fail with SQLSTATE 25006. Each session
	// runs with default_transaction_read_only = on, put back on before the next transaction
	// whenever the client may have turned it off (readOnlyChange); as on a hot standby, a
	// statement that would make a transaction read-write (BEGIN … READ WRITE, SET TRANSACTION
	// READ WRITE, SET transaction_read_only = off: makesReadWrite) is refused with 25006, so
	// PostgreSQL refuses every write before it runs (nextval and setval too, which no rollback
	// undoes), and a commit of a transaction that wrote anyway (one begun in another mode, a
	// large object before PostgreSQL 16) is rolled back with 25006. Statements that cannot run in a
	// transaction block, which the shim never wraps, get the setting put back on right before
	// them; of those, CALL and DO blocks that commit, which may turn it off between their own
	// transactions, are refused with 25006 outside a transaction block. It is the mode of a new
	// Shim.
	ModeReadOnly Mode = iota
	// ModeFenced refuses every new transaction (SQLSTATE 57P03, cannot_connect_now) and every
	// write commit (25006); transactions already open may still read and roll back. Statements
	// that cannot run in a transaction block are treated as in ModeReadOnly.
	ModeFenced
	// ModeSolo commits locally only (the peer is unreachable or catching up).
	ModeSolo
	// ModeDual commits each write transaction on both databases (DESIGN §5.3).
	ModeDual
)

func (m Mode) String() string {
	switch m {
	case ModeReadOnly:
		return "read-only"
	case ModeFenced:
		return "fenced"
	case ModeSolo:
		return "solo"
	case ModeDual:
		return "dual"
	}
	return fmt.Sprintf("Mode(%d)", int32(m))
}

// modeState is the mode with the term it was set for; it is replaced whole, never changed.
type modeState struct {
	mode Mode
	term uint64
	// why, with ModeFenced set by Shim.Fence, says why this site is fenced, for the clients
	// the shim refuses; "" for a site fenced by its role (not the master).
	why string
}

// fencedMessage is what the shim tells a client it refuses while fenced, after "tandem: ".
func (ms *modeState) fencedMessage(what string) string {
	if ms.why == "" {
		return "this site is fenced; " + what
	}
	return "this site is fenced: " + ms.why + "; " + what
}

// modeCell holds the shim's mode. Sessions read it with Load, which notes a solo term it
// returns: from that read on the session may commit alone in that term (Shim.WentSolo). Every
// way a client's work reaches the database after the shim turned solo reads the mode so — a
// unit of work takes its policy, a write commit already under way reads it again past the
// commit gate — while a session that last read a read-only mode cannot write (its database
// session runs with default_transaction_read_only = on, and a write commit is checked). The
// shim's own reads (Shim.Mode, the switches) use peek, which notes nothing.
type modeCell struct {
	p atomic.Pointer[modeState]
	// solo holds the terms whose solo mode a session read since the shim was last dual in them
	// (term → struct{}).
	solo sync.Map
	// master is the last mode set that takes writes (dual or solo), kept when a role change
	// sets another: what a handover's barrier asks about (Shim.Barrier). Changed with p, under
	// mu, so that the two agree.
	master atomic.Pointer[modeState]
	mu     sync.Mutex
}

// set makes ms the mode and returns the one before.
func (c *modeCell) set(ms *modeState) (old *modeState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old = c.p.Swap(ms)
	c.noteMasterLocked(ms)
	return old
}

// swap makes ms the mode if old still is, and tells whether it did.
func (c *modeCell) swap(old, ms *modeState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.p.CompareAndSwap(old, ms) {
		return false
	}
	c.noteMasterLocked(ms)
	return true
}

func (c *modeCell) noteMasterLocked(ms *modeState) {
	if ms.mode == ModeDual || ms.mode == ModeSolo {
		c.master.Store(ms)
	}
}

// Load is a session's read of the mode; a solo mode notes its term before it is returned.
func (c *modeCell) Load() *modeState {
	ms := c.p.Load()
	if ms.mode == ModeSolo {
		c.noteSolo(ms.term)
	}
	return ms
}

// noteSolo records that the shim may commit alone in term from now on.
func (c *modeCell) noteSolo(term uint64) {
	if _, ok := c.solo.Load(term); !ok {
		c.solo.Store(term, struct{}{})
	}
}

// peek is the shim's own read of the mode: it notes nothing.
func (c *modeCell) peek() *modeState { return c.p.Load() }

// policy is what one unit of client work (a Query or an extended-protocol batch) does under a mode.
type policy struct {
	modeState
	intercept bool // run the commit procedure at the end of write transactions
	wrap      bool // open implicit write transactions with an injected BEGIN
	peer      bool // use the Peer (dual commit)
	readOnly  bool // the session must run with default_transaction_read_only = on
	fenced    bool // refuse new transactions
}

// recordDDL tells whether DDL through the shim is written to tandem.ddl (DESIGN §5.2): in the
// modes whose commits reach the peer, now or by catch-up.
func (p policy) recordDDL() bool {
	return p.term > 0 && (p.mode == ModeDual || p.mode == ModeSolo)
}

func policyFor(ms modeState) policy {
	// Implicit writes are wrapped in every mode: in read-only modes too, so that the check at
	// their end refuses a write that got past default_transaction_read_only (a client may
	// RESET or DISCARD it). Statements that cannot be wrapped are dealt with in walk.
	p := policy{modeState: ms, intercept: true, wrap: true}
	switch ms.mode {
	case ModeDual:
		p.peer = true
	case ModeSolo:
	case ModeFenced:
		p.readOnly, p.fenced = true, true
	default:
		p.readOnly = true
	}
	return p
}
