package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartImplicitSyncThenDone: an extended request whose part sent up to a Flush holds
// a procedure before its COPY FROM STDIN, so that the shim wraps none of it (wrapFrom): the
// COPY runs in the request's implicit transaction, not in a block. The client sends a Sync
// during the data (ignored while PostgreSQL copies), its CopyDone and the rest of the
// request, whose INSERT fails: PostgreSQL rolls back the whole implicit transaction, the
// procedure's row and the COPY's with it. endCopyPart's probe began with a Sync, which
// committed them in the backend before the client's INSERT ran. A bad row before or after
// the client's Sync fails the transaction, the probe's Sync harmless then.
func TestCopyPartImplicitSyncThenDone(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE cpi(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	s := startShim(t, c, Options{}, ModeSolo, 1)
	// good/fails: the COPY ends well and the INSERT after it fails (a duplicate key); good/ok:
	// both run; bad: a bad row before the client's Sync, which PostgreSQL answers, then runs
	// the INSERT as a request of its own; late: a bad row after it, and PostgreSQL skips the
	// INSERT up to its Sync.
	for i, tc := range []string{"good/fails", "good/ok", "bad", "late"} {
		t.Run(tc, func(t *testing.T) {
			passedCopyStepsHooked(t, c, &fakePeer{c: c, t: t}, s, 0, func(b int) [][]pgproto3.FrontendMessage {
				b += 1000 * i
				next := b + 5
				if tc == "good/fails" {
					next = b // the procedure's row: a duplicate key
				}
				data := []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.Sync{}}
				switch tc {
				case "bad":
					data = []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyData{Data: []byte("bad\n")}, &pgproto3.Sync{}}
				case "late":
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")})
				}
				return [][]pgproto3.FrontendMessage{
					{&pgproto3.Parse{Query: fmt.Sprintf("CALL cpi(%d)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{},
						&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
					append(append(data, &pgproto3.CopyDone{}),
						&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", next)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}),
					{&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
					{&pgproto3.Query{String: fmt.Sprintf("DELETE FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				}
			}, nil)
		})
	}
}
