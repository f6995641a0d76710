package txshim

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtendedCopyDataAhead: copy data sent right behind an extended-protocol Execute of COPY
// FROM STDIN, before any Flush or Sync (without waiting for the CopyInResponse), was relayed
// to the backend ahead of the Parse, Bind and Execute the shim held for the Sync: the backend
// dropped it (copy messages outside a COPY are ignored), then ran the COPY and waited for data
// that never came, so the session hung with no reply; with more messages behind, it ended
// without a word. The shim now ends the session with an error saying the shape is not
// supported.
func TestExtendedCopyDataAhead(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE cahead (id int PRIMARY KEY, v text)`)
	for _, tail := range [][]pgproto3.FrontendMessage{
		{&pgproto3.CopyDone{}, &pgproto3.Sync{}},
		{&pgproto3.CopyDone{}, &pgproto3.Parse{Query: "INSERT INTO cahead VALUES (3, 'c')"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
	} {
		r := dialRaw(t, s)
		msgs := append(xpbe("COPY cahead FROM STDIN"), &pgproto3.CopyData{Data: []byte("1\ta\n2\tb\n")})
		got := r.runSteps([]xstep{{msgs: append(msgs, tail...), until: "Z"}})
		if !strings.Contains(got, "08P01") || !strings.Contains(got, "not supported") {
			t.Errorf("through the shim: %s", got)
		}
	}
}
