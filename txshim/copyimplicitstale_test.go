package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestWrappedExtCopyDoneThenQueryAfterImplicitPart: a request whose part sent at a Flush ran a
// procedure and then a COPY FROM STDIN, in the request's implicit transaction
// (copyPartImplicit), then, in a later request, an extended COPY the shim wraps whose CopyDone
// a simple Query follows before the Sync (TestWrappedExtCopyDoneThenQuery). copyPartImplicit,
// which tells only while copyPart is set, stayed from the earlier request, and clientLoop read
// it for the Query: the session ended (08P01) where PostgreSQL, and the shim on a fresh
// session, run the Query in the COPY's transaction and commit both.
func TestWrappedExtCopyDoneThenQueryAfterImplicitPart(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	c.Exec(t, `CREATE PROCEDURE cqs(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	stmt := func(q string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}
	var got [2]string
	base := 96000
	for i, via := range []string{"PostgreSQL", "shim"} {
		base += 100
		b := base
		r := dialVia(t, via, c, s)
		r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var out strings.Builder
		sendMsgs(t, r, append(append(stmt(fmt.Sprintf("CALL cqs(%d)", b+5)), stmt("COPY acct FROM STDIN")...), &pgproto3.Flush{})...)
		seen, err := r.until('G')
		if err != nil {
			t.Fatalf("%s: first COPY: %q %v", via, seen, err)
		}
		out.WriteString(seen + " | ")
		sendMsgs(t, r, copyRow(b+6), &pgproto3.CopyDone{}, &pgproto3.Sync{})
		seen, st := r.ready()
		out.WriteString(fmt.Sprintf("%s(%c) | ", seen, st))
		sendMsgs(t, r, append(stmt("COPY acct FROM STDIN"), &pgproto3.Sync{})...)
		if seen, err = r.until('G'); err != nil {
			t.Fatalf("%s: second COPY: %q %v", via, seen, err)
		}
		out.WriteString(seen + " | ")
		sendMsgs(t, r, copyRow(b+1), &pgproto3.CopyDone{}, &pgproto3.Query{String: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}, &pgproto3.Sync{})
		out.WriteString(r.stepsEnd())
		got[i] = out.String()
	}
	if got[0] != got[1] {
		t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
	}
	if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", base+1, base+2)); n != 2 {
		t.Errorf("%d rows of the second request committed, want 2", n)
	}
	calls := peer.take()
	if len(calls) < 2 || calls[len(calls)-2][:8] != "prepare " || calls[len(calls)-1][:7] != "commit " {
		t.Errorf("peer calls %v, want the second request's dual commit last", calls)
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d transactions left prepared", n)
	}
}
