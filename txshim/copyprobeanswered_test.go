package txshim

import (
	"fmt"
	"strings"
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
	base := 6600
	var got [2]string
	for i, via := range []string{"PostgreSQL", "shim"} {
		base += 100
		r := dialVia(t, via, c, dual)
		var out strings.Builder
		step := func(msgs ...pgproto3.FrontendMessage) {
			sendMsgs(t, r, msgs...)
			out.WriteString(r.quiet())
		}
		step(&pgproto3.Query{String: "BEGIN"})
		step(&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if via == "shim" {
			dual.hooks.ready.set(func() { time.Sleep(300 * time.Millisecond) })
		}
		// The request goes while the Sync's ReadyForQuery is held in the hook: the client did
		// not wait for it.
		sendMsgs(t, r, copyRow(base), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}, &pgproto3.CopyDone{})
		time.Sleep(100 * time.Millisecond)
		step(&pgproto3.Query{String: "SELECT 42"})
		dual.hooks.ready.clear()
		step(&pgproto3.Query{String: "ROLLBACK"})
		step(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", base)})
		step(&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", base, base+9)})
		if via == "shim" {
			out.WriteString(r.settle(out.String(), got[0]))
		}
		got[i] = out.String()
	}
	if got[0] != got[1] {
		t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
	}
	checkDual(t, peer.take(), 1)
}
