package txshim

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestCopyPartImplicitThenFlushedWrite: as TestCopyPartImplicitSyncThenDone, the request's
// COPY FROM STDIN in its implicit transaction behind a procedure, ended well, then a write
// sent up to a Flush and one that fails, up to the Sync: PostgreSQL rolls back all of it.
// walk's begin took the COPY for one in a block, and settled the status with a Sync, which
// committed the procedure's and the COPY's rows (syncs=-1: a bad row, the rest skipped).
func TestCopyPartImplicitThenFlushedWrite(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	c.Exec(t, `CREATE PROCEDURE cpf(i int) LANGUAGE sql AS $$ INSERT INTO acct VALUES (i, 0) $$`)
	s := startShim(t, c, Options{}, ModeSolo, 1)
	for i, syncs := range []int{0, 1, -1} {
		t.Run(fmt.Sprintf("syncs=%d", syncs), func(t *testing.T) {
			passedCopyStepsHooked(t, c, &fakePeer{c: c, t: t}, s, 0, func(b int) [][]pgproto3.FrontendMessage {
				b += 1000 * i
				data := []pgproto3.FrontendMessage{copyRow(b + 1)}
				for range syncs {
					data = append(data, &pgproto3.Sync{})
				}
				if syncs < 0 {
					// A bad row: PostgreSQL skips the rest up to the Sync.
					data = append(data, &pgproto3.CopyData{Data: []byte("bad\n")})
				}
				return [][]pgproto3.FrontendMessage{
					{&pgproto3.Parse{Query: fmt.Sprintf("CALL cpf(%d)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{},
						&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}},
					append(data, &pgproto3.CopyDone{},
						&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+5)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{}),
					{&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
					{&pgproto3.Query{String: fmt.Sprintf("DELETE FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}},
				}
			}, nil)
		})
	}
}
