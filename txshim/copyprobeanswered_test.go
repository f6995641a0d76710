package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedExtCopyProbeAnswerRace: a passed-through extended COPY FROM STDIN (in the
// client's block) whose client sends a bad row and a Sync during the data, then its CopyDone
// and, not waiting for the replies, another request. The backend's ReadyForQuery for that Sync answers the
// COPY's entry; the client's request came while serverLoop was passing it on (the ready hook
// holds it there, as a loaded machine may), the entry still queued: the shim took it for one
// awaiting its probe, whose ReadyForQuery, CloseComplete and ReadyForQuery then reached the
// client or the request's entry.
func TestPassedExtCopyProbeAnswerRace(t *testing.T) {
	t.Parallel()
	c, peer, dual := dualShim(t)
	passedCopyStepsHooked(t, c, peer, dual, 1, func(base int) [][]pgproto3.FrontendMessage {
		return [][]pgproto3.FrontendMessage{
			{&pgproto3.Query{String: "BEGIN"}},
			{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{copyRow(base), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}, &pgproto3.CopyDone{}},
			{&pgproto3.Query{String: "SELECT 42"}},
			{&pgproto3.Query{String: "ROLLBACK"}},
			{&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", base)}},
			{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)}},
		}
	}, func(via string, i int) bool {
		switch i {
		case 2:
			if via == "shim" {
				dual.hooks.ready.set(func() { time.Sleep(300 * time.Millisecond) })
			}
			// The request goes while the Sync's ReadyForQuery is held in the hook: the client
			// did not wait for it.
			return true
		case 3:
			time.Sleep(100 * time.Millisecond)
		case 4:
			dual.hooks.ready.clear()
		}
		return false
	})
}
