package txshim

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartJoinedLeavesGate: a CALL and a COPY FROM STDIN sent as a part (up to a Flush),
// the COPY in the request's implicit transaction, and a simple Query or a FunctionCall after
// its CopyDone, which the shim runs in a block of its own that it pulled the implicit
// transaction into (joinImplicit), one dual commit at its end. The procedure passed the commit
// gate (session.procGate) because the implicit transaction it left would commit plainly at the
// request's Sync; once the Query or call is answered nothing of it is left to commit, but the
// session stayed counted in the gate until the client's Sync: a client that sent none yet kept
// a hold (catch-up) waiting, and a handover's Drain ran out and ended the session. A hold asked
// for after the reply, before the Sync, is granted at once.
func TestCopyPartJoinedLeavesGate(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	oid := committingProcAndWriter(t, c, "cjg")
	for i, tc := range []string{"query", "query/error", "fcall", "fcall/error"} {
		t.Run(tc, func(t *testing.T) {
			b := 7000 + 100*i
			commits, want := 1, 4
			arg := b + 5
			if strings.HasSuffix(tc, "/error") {
				arg, commits, want = b+1, 0, 1 // the COPY's row again; the procedure's first row stays
			}
			r := callCopyPart(t, s, "cjg", b)
			next := pgproto3.FrontendMessage(&pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", arg)})
			if strings.HasPrefix(tc, "fcall") {
				next = &pgproto3.FunctionCall{Function: oid, Arguments: [][]byte{[]byte(fmt.Sprint(arg))}}
			}
			sendMsgs(t, r, copyRow(b+1), &pgproto3.CopyDone{}, next)
			seen, st := r.ready()
			if strings.Contains(seen, "E(23505)") != strings.HasSuffix(tc, "/error") || st != 'I' {
				t.Fatalf("reply %q (%c)", seen, st)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			release, err := s.HoldCommits(ctx)
			if err != nil {
				t.Fatalf("a hold asked for after the reply, before the client's Sync: %v", err)
			}
			release()
			sendMsgs(t, r, &pgproto3.Sync{})
			if seen, st := r.ready(); seen != "Z" || st != 'I' {
				t.Errorf("the Sync's reply %q (%c), want Z (I)", seen, st)
			}
			checkDual(t, peer.take(), commits)
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", b, b+9)); n != want {
				t.Errorf("%d rows committed, want %d", n, want)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
		})
	}
}
