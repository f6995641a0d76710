package txshim

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopySkipTerminate: a Terminate while the shim drops the client's messages up to its Sync
// after a failed extended COPY FROM STDIN (copySkip, and relayUntilSync's dropping for a COPY
// the shim wraps), the client keeping its connection open. PostgreSQL ends the session at the
// Terminate; through the shim it must end as well: the same replies, the session gone (its
// goroutines with it), no backend left, nothing prepared or kept.
func TestCopySkipTerminate(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	db := c.Open(t, c.Database())
	for i, tc := range []string{"passed", "passed/syncs", "wrapped", "wrapped/syncs"} {
		t.Run(tc, func(t *testing.T) { // one after another: the session count is the case's
			// The replies of both, in order; not split by step: a reply a loaded machine
			// delays past a step's quiet window shows in the next step (ci209).
			var got [2]string
			for j, via := range []string{"PostgreSQL", "shim"} {
				b := 9000 + 100*i + 10*j
				r := dialVia(t, via, c, s)
				var data []pgproto3.FrontendMessage
				if tc == "passed" || tc == "passed/syncs" {
					sendMsgs(t, r, &pgproto3.Query{String: fmt.Sprintf("BEGIN; INSERT INTO acct VALUES (%d, 0)", b)})
					got[j] += r.quiet()
				}
				if tc == "passed/syncs" || tc == "wrapped/syncs" {
					data = append(data, copyRow(b+1), &pgproto3.Sync{})
				}
				data = append(data, copyRow(b+2), &pgproto3.CopyData{Data: []byte("bad")}, &pgproto3.CopyDone{}, &pgproto3.Query{String: "SELECT 42"})
				sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				got[j] += r.quiet()
				sendMsgs(t, r, data...)
				got[j] += r.quiet()
				start := time.Now()
				sendMsgs(t, r, &pgproto3.Terminate{})
				r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				got[j] += r.toEnd()
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("%s: the session ended %v after the Terminate", via, d.Round(time.Millisecond))
				}
				if via == "shim" {
					waitFor(t, "the session's end", func() bool { return s.Stats().SessionsActive == 0 })
				}
				r.conn.Close()
			}
			if got[0] != got[1] {
				t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
			}
			waitFor(t, "no backend of the sessions left", func() bool {
				return queryOne[int](t, db, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") == 0
			})
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", 9000+100*i, 9099+100*i)); n != 0 {
				t.Errorf("%d rows kept", n)
			}
			if calls := peer.take(); len(calls) != 0 {
				t.Errorf("peer calls %v", calls)
			}
		})
	}
}
