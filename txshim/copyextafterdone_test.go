package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExtCopyDoneThenExtRequest: after an extended COPY FROM STDIN's CopyDone, the client sends
// a Parse/Bind/Execute before its Sync (then maybe another Sync). relayUntilSync passed them
// straight to the backend: a CREATE TABLE ran unrecorded in tandem.ddl (so never reaching the
// peer), and a DELETE FROM tandem.ddl, refused (42501) on every other path, ran (DELETE 0).
// The shim then ended the session (08P01) before any of it reached the backend; now it walks
// them as the rest of the COPY's request, in the COPY's transaction
// (TestWrappedExtCopyDoneThenExtWrite): the CREATE TABLE is recorded, committed with the
// COPY's rows in one dual commit, and the DELETE is refused, the COPY rolled back with it.
func TestExtCopyDoneThenExtRequest(t *testing.T) {
	t.Parallel()
	for _, inBlock := range []bool{false, true} {
		for _, tc := range []struct{ name, q string }{
			{"ddl", "CREATE TABLE zz%d (id int)"},
			{"refused", "DELETE FROM tandem.ddl WHERE false"},
		} {
			name := tc.name
			if inBlock {
				name += "/block"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c, peer, s := dualShim(t)
				id := 88100
				if inBlock {
					id += 10
				}
				if tc.name == "refused" {
					id++
				}
				q := tc.q
				if strings.Contains(q, "%d") {
					q = fmt.Sprintf(q, id)
				}
				r := dialRaw(t, s)
				r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				if inBlock {
					sendMsgs(t, r, &pgproto3.Query{String: "BEGIN"})
					if got, st := r.ready(); st != 'T' {
						t.Fatalf("BEGIN: %q %c", got, st)
					}
				}
				sendMsgs(t, r, &pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if got, err := r.until('G'); err != nil {
					t.Fatalf("COPY: %q %v", got, err)
				}
				sendMsgs(t, r, copyRow(id), &pgproto3.CopyDone{},
					&pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}, &pgproto3.Sync{})
				var seen []string
				committed := false
				// The replies end with the second Sync's ReadyForQuery, or the COMMIT's.
				rfqs := 0
				for {
					m, err := r.fe.Receive()
					if err != nil {
						break
					}
					switch m := m.(type) {
					case *pgproto3.ErrorResponse:
						seen = append(seen, m.Code+" "+m.Message)
						if m.Severity == "FATAL" {
							goto end
						}
					case *pgproto3.CommandComplete:
						seen = append(seen, "C "+string(m.CommandTag))
					case *pgproto3.ReadyForQuery:
						rfqs++
						if m.TxStatus == 'T' && !committed {
							// The client's block goes on: it commits it.
							sendMsgs(t, r, &pgproto3.Query{String: "COMMIT"})
							committed = true
						}
						if rfqs >= 2 && (!committed || rfqs >= 3) {
							goto end
						}
					}
				}
			end:
				db := c.Open(t, c.Database())
				count := func(q string, args ...any) int {
					var n int
					if err := db.QueryRow(q, args...).Scan(&n); err != nil {
						t.Fatal(err)
					}
					return n
				}
				zz := count("SELECT count(*) FROM pg_class WHERE relname = $1", fmt.Sprintf("zz%d", id))
				recorded := count("SELECT count(*) FROM tandem.ddl WHERE stmt = $1", q)
				// A COPY in the client's block is passed, not relayed: what follows it is the
				// shim's as any request (recorded, or refused). One the shim wraps is relayed:
				// what follows it is walked as the rest of its request, alike.
				switch tc.name {
				case "ddl":
					if zz != 1 || recorded != 1 {
						t.Errorf("replies %q: table zz%d %d, recorded %d, want both", seen, id, zz, recorded)
					}
				case "refused":
					if len(seen) < 2 || !strings.HasPrefix(seen[1], "42501 ") {
						t.Errorf("replies %q, want the DELETE refused (42501)", seen)
					}
				}
				if inBlock {
					return
				}
				want, commits := 1, 1
				if tc.name == "refused" {
					// Rolled back with the refused DELETE, as at any error in its transaction.
					want, commits = 0, 0
				}
				if n := count("SELECT count(*) FROM acct WHERE id = $1", id); n != want {
					t.Errorf("replies %q: rows of the COPY: %d, want %d", seen, n, want)
				}
				checkDual(t, peer.take(), commits)
			})
		}
	}
}
