package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPassedCopyMidSyncKeepsUnnamed: the statement the shim sends behind a passed-through
// extended COPY whose client sent a Sync during it (copyMark) must leave the client's unnamed
// prepared statement alone: PostgreSQL keeps it, and the client may bind it again.
func TestPassedCopyMidSyncKeepsUnnamed(t *testing.T) {
	t.Parallel()
	c, _, dual := dualShim(t)
	base := 5000
	var got [2]string
	for i, via := range []string{"PostgreSQL", "shim"} {
		base += 10
		var r *rawSession
		if via == "PostgreSQL" {
			r = dialRawDSN(t, c.DSN(c.Database()))
		} else {
			r = dialRaw(t, dual)
		}
		r.t = t
		var out strings.Builder
		step := func(msgs ...pgproto3.FrontendMessage) {
			sendMsgs(t, r, msgs...)
			out.WriteString(r.quiet() + " | ")
		}
		step(&pgproto3.Query{String: "BEGIN"})
		step(&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		step(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\t0\n", base))}, &pgproto3.Sync{})
		step(&pgproto3.CopyDone{}, &pgproto3.Sync{})
		// The unnamed statement, bound again.
		step(&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		step(&pgproto3.CopyData{Data: []byte(fmt.Sprintf("%d\t0\n", base+1))}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
		step(&pgproto3.Query{String: "COMMIT"})
		if via == "shim" {
			out.WriteString(r.settle(out.String(), got[0]))
		}
		got[i] = strings.ReplaceAll(out.String(), " | ", "")
	}
	if got[0] != got[1] {
		t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
	}
}
