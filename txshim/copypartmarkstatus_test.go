package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartSyncsThenRequestPiped: an extended COPY FROM STDIN the shim wraps, sent up to a
// Flush (its part in the shim's block), whose client sends a bad row and a Sync, reads their
// replies, and then sends another Sync during the data and a request behind it in one write.
// PostgreSQL, its COPY's implicit transaction rolled back at the first Sync, answers the
// second with ReadyForQuery status 'I' too. The shim's copyMark (endCopyPart), sent at the
// request, may come before the backend's answer to that Sync: serverLoop passed it on as the
// mark's, with the backend's status, 'E' (the shim's block failed).
func TestCopyPartSyncsThenRequestPiped(t *testing.T) {
	t.Parallel()
	passedCopySteps(t, 2, copyPartSyncsThenRequestSteps)
}

// copyPartSyncsThenRequestSteps are TestCopyPartSyncsThenRequestPiped's steps.
func copyPartSyncsThenRequestSteps(b int) [][]pgproto3.FrontendMessage {
	return [][]pgproto3.FrontendMessage{
		{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
		{copyRow(b), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}},
		{copyRow(b + 1), &pgproto3.Sync{}, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+3)}},
		{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
		{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}},
		{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
	}
}

// TestCopyPartSyncThenRequestWindow: as TestCopyPartSyncsThenRequestPiped, the backend's
// answer to the client's second Sync read while endCopyPart, at the request, had ended the
// part (copyPart cleared) but not yet queued its copyMark (the copyPartEnded hook holds it
// there, as a loaded machine may): no entry awaited it and copyPartStatus was gone, so it
// reached the client with the backend's status, 'E', where PostgreSQL sends 'I'.
func TestCopyPartSyncThenRequestWindow(t *testing.T) {
	t.Parallel()
	c, peer, dual := dualShim(t)
	passedCopyStepsHooked(t, c, peer, dual, 2, copyPartSyncsThenRequestSteps, func(via string, i int) bool {
		switch {
		case i == 2 && via == "shim":
			// The step with the second Sync and the request.
			dual.hooks.copyPartEnded.set(func() { time.Sleep(300 * time.Millisecond) })
		case i == 3:
			dual.hooks.copyPartEnded.clear()
		}
		return false
	})
}
