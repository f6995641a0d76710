package txshim

import "sync/atomic"

// hook is a function a test sets to run at one point of a code path; unset, as always outside
// tests, it is nil and the code path does nothing more. Each Shim and Shipper holds its own
// (shimHooks, shipperHooks), so tests that set them may run in parallel; setting and reading
// one are atomic, so a test may change it while the code path runs.
type hook[F any] struct{ p atomic.Pointer[F] }

// set makes f the hook.
func (h *hook[F]) set(f F) { h.p.Store(&f) }

// clear unsets the hook.
func (h *hook[F]) clear() { h.p.Store(nil) }

// get returns the hook: nil when unset, or when h is nil.
func (h *hook[F]) get() F {
	if h != nil {
		if p := h.p.Load(); p != nil {
			return *p
		}
	}
	var none F
	return none
}

// shimHooks are a Shim's test hooks, reached by its sessions through their shim.
type shimHooks struct {
	// failpoint is called between the steps of the dual commit (DESIGN §7); an error ends the
	// session on the spot, both connections closed, as if the process died there. Steps:
	// "before-prepare", "after-local-prepare", "after-peer-prepare", "after-local-commit".
	failpoint hook[func(step string) error]
	// ownStep may replace a statement of the session's own that it sends (captureRetried,
	// markStream, viaStepHook): one that cancels itself stands for the client's cancel landing
	// on it.
	ownStep hook[func(q string) string]
	// ready is called just before a ReadyForQuery from the backend goes to the client: a test
	// delays it there.
	ready hook[func()]
	// copyIn is called once a CopyInResponse that opens a passed-through COPY FROM STDIN has
	// gone to the client: a test delays the session there.
	copyIn hook[func()]
	// copyPartEnded is called once endCopyPart has ended a COPY's part (copyPartDone), before
	// it writes its copyMark: a test delays the session there.
	copyPartEnded hook[func()]
	// started is called when a session's startup is done, before the shim registers the
	// session and greets its client.
	started hook[func()]
}

// shipperHooks are a Shipper's test hooks.
type shipperHooks struct {
	// catchUp is called after each transaction catch-up shipped and before it is recorded as
	// done; an error stops CatchUp there, as a crash would. While it is set, catch-up ships
	// no runs (runAfterLocked).
	catchUp hook[func(shipped int) error]
	// peerOp is called before each COMMIT or ROLLBACK PREPARED on the peer (a sleep in it
	// holds one back).
	peerOp hook[func(gid string, commit bool)]
	// spillWrite fails the writes to the spill files of the Shipper's decoders.
	spillWrite hook[func() error]
	// lookGap gives, for each look of commitsUnseen (0: the first), an SQL expression that its
	// statement evaluates right before it ("": none): a wait in it stands for the instants
	// around the looks stretched by a loaded machine.
	lookGap hook[func(look int) string]
	// slotRemade is called once Resync has made the lost slot anew, before the copy reads
	// anything: a commit a test makes there is one that the copy and the new slot must agree on.
	slotRemade hook[func()]
	// snapshotConn is called with the backend pid of the connection the copy is to read in,
	// before it imports the snapshot the slot made anew exported.
	snapshotConn hook[func(pid uint32)]
	// aligned is called once catch-up has copied the sequences' positions to the peer, before
	// the peer is marked synced: a nextval a test runs there is one that ran after the copy.
	aligned hook[func()]
}
