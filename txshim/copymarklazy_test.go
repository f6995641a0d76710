package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// passedCopySteps runs steps on a session straight to PostgreSQL and on one through the shim,
// and fails t unless the shim's replies are PostgreSQL's, message for message (quiet: the
// steps' bounds are where replies paused, which the load may move; stepsEnd: on each session,
// the replies that came after the steps' pauses, up to the end of them all), and unless the shim's session made exactly commits dual commits:
// the transactions whose rows (the COPY's among them, or not) reached the peer.
func passedCopySteps(t *testing.T, commits int, steps func(base int) [][]pgproto3.FrontendMessage) {
	t.Helper()
	c, peer, dual := dualShim(t)
	passedCopyStepsOn(t, c, peer, dual, commits, steps)
}

// passedCopyStepsOn is passedCopySteps on a dual shim of the caller's.
func passedCopyStepsOn(t *testing.T, c *pgtest.Cluster, peer *fakePeer, dual *testShim, commits int, steps func(base int) [][]pgproto3.FrontendMessage) {
	t.Helper()
	passedCopyStepsHooked(t, c, peer, dual, commits, steps, nil)
}

// copyStepHook is called by passedCopyStepsHooked before step i of each session goes out (via
// is "PostgreSQL", then "shim"): a test sets or clears one of the shim's hooks there, or
// waits. piped: the step's replies are read with the next step's, as by a client that sends
// on without waiting for them.
type copyStepHook func(via string, i int) (piped bool)

// passedCopyStepsHooked is passedCopyStepsOn with hook (nil: none) called before each step.
func passedCopyStepsHooked(t *testing.T, c *pgtest.Cluster, peer *fakePeer, dual *testShim, commits int, steps func(base int) [][]pgproto3.FrontendMessage, hook copyStepHook) {
	t.Helper()
	base := 6000
	var got [2]string
	for i, via := range []string{"PostgreSQL", "shim"} {
		base += 100
		r := dialVia(t, via, c, dual)
		var out strings.Builder
		for j, st := range steps(base) {
			piped := hook != nil && hook(via, j)
			sendMsgs(t, r, st...)
			if !piped {
				out.WriteString(r.quiet() + " | ")
			}
		}
		out.WriteString(r.stepsEnd())
		got[i] = out.String()
	}
	if strings.ReplaceAll(got[0], " | ", "") != strings.ReplaceAll(got[1], " | ", "") {
		t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
	}
	checkDual(t, peer.take(), commits)
}

func copyRow(id int) *pgproto3.CopyData {
	return &pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\t0\n", id))}
}

// TestPassedCopyMidSyncTwoCopies: a simple Query of two COPY FROM STDIN the shim passes through
// (in the client's block), whose client sends a Sync during the first. The shim sent its
// copyMark (a Close and a Sync) at the first COPY's CopyDone, which the backend read in the
// second COPY's copy-in: it ended the session (08P01, unexpected message type).
func TestPassedCopyMidSyncTwoCopies(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 1, func(base int) [][]pgproto3.FrontendMessage {
		return [][]pgproto3.FrontendMessage{
			{&pgproto3.Query{String: "BEGIN"}},
			{&pgproto3.Query{String: "COPY acct FROM STDIN; COPY acct FROM STDIN"}},
			{copyRow(base), &pgproto3.Sync{}},
			{copyRow(base + 1), &pgproto3.CopyDone{}},
			{copyRow(base + 2), &pgproto3.CopyDone{}},
			{&pgproto3.Query{String: "COMMIT"}},
			{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
		}
	})
}

// TestPassedCopySyncsReset: the Syncs a client sent during a passed-through extended COPY FROM
// STDIN (copySyncs) stayed counted when its CopyDone was followed by a Query rather than the
// COPY's Sync: no copyMark was sent for them, and the count made a later COPY's end send one
// — into the copy-in of the second COPY of a Query, which ended the session.
func TestPassedCopySyncsReset(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 1, passedCopySyncsResetSteps)
}

// passedCopySyncsResetSteps are TestPassedCopySyncsReset's steps.
func passedCopySyncsResetSteps(base int) [][]pgproto3.FrontendMessage {
	return [][]pgproto3.FrontendMessage{
		{&pgproto3.Query{String: "BEGIN"}},
		{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
		{&pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}, &pgproto3.Sync{}},
		{&pgproto3.CopyDone{}, &pgproto3.Query{String: "ROLLBACK"}},
		{&pgproto3.Query{String: "BEGIN"}},
		{&pgproto3.Query{String: "COPY acct FROM STDIN; COPY acct FROM STDIN"}},
		{copyRow(base), &pgproto3.CopyDone{}},
		{copyRow(base + 1), &pgproto3.CopyDone{}},
		{&pgproto3.Query{String: "COMMIT"}},
		{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
	}
}

// TestPassedCopyStepsSlowCommit: passedCopySteps read each step's replies until they paused
// (quiet) and compared what came: a dual commit slower than the pause, as on a loaded machine
// (the fsyncs of the local PREPARE TRANSACTION and COMMIT PREPARED, the peer's prepare on a
// connection of its own), left the COMMIT's replies and those of the request after it unread,
// and the peer's COMMIT PREPARED not yet called: TestPassedCopySyncsReset failed, its shim
// sending nothing from the COMMIT on, though it was right. The commit is slowed here after
// the peer's prepare (the failpoint hook).
func TestPassedCopyStepsSlowCommit(t *testing.T) {
	t.Parallel()
	c, peer, dual := dualShim(t)
	dual.hooks.failpoint.set(func(step string) error {
		if step == "after-peer-prepare" {
			time.Sleep(time.Second)
		}
		return nil
	})
	passedCopyStepsOn(t, c, peer, dual, 1, passedCopySyncsResetSteps)
}

// TestWrappedCopyMidSyncTwoCopies: a simple Query of two COPY FROM STDIN the shim wraps, whose
// client sends a Sync during the first: the copyMark queued for it went out at the first
// COPY's CopyDone, into the second COPY's copy-in, which ended the session.
func TestWrappedCopyMidSyncTwoCopies(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 1, func(base int) [][]pgproto3.FrontendMessage {
		return [][]pgproto3.FrontendMessage{
			{&pgproto3.Query{String: "COPY acct FROM STDIN; COPY acct FROM STDIN"}},
			{copyRow(base), &pgproto3.Sync{}},
			{copyRow(base + 1), &pgproto3.CopyDone{}},
			{copyRow(base + 2), &pgproto3.CopyDone{}},
			{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
		}
	})
}
