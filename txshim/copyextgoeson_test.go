package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tandem-ha/tandem/internal/pgtest"
)

// extCopySteps runs, on a session straight to PostgreSQL and on one through the shim: before
// (each request read up to its ReadyForQuery), an extended COPY acct FROM STDIN (Parse, Bind,
// Execute, Sync; copy instead, when not nil) read up to its CopyInResponse, then after (the
// data, the CopyDone and what follows) read to stepsEnd. steps gives the three. It fails t unless the shim's replies
// are PostgreSQL's, and returns the shim's session's base (rows of base+1… are the test's):
// base+100 on PostgreSQL's, base+200 on the shim's.
// Each read waits for a reply that must come, not for a pause.
func extCopySteps(t *testing.T, c *pgtest.Cluster, dual *testShim, base int, steps func(base int) (before [][]pgproto3.FrontendMessage, copy, after []pgproto3.FrontendMessage)) int {
	t.Helper()
	var got [2]string
	for i, via := range []string{"PostgreSQL", "shim"} {
		base += 100
		r := dialVia(t, via, c, dual)
		r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		before, start, after := steps(base)
		var out strings.Builder
		for _, req := range before {
			sendMsgs(t, r, req...)
			seen, st := r.ready()
			out.WriteString(fmt.Sprintf("%s(%c) | ", seen, st))
		}
		if start == nil {
			start = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		}
		sendMsgs(t, r, start...)
		seen, err := r.until('G')
		out.WriteString(seen + " | ")
		if err != nil {
			t.Fatalf("%s: COPY: %q %v", via, seen, err)
		}
		sendMsgs(t, r, after...)
		out.WriteString(r.stepsEnd())
		got[i] = out.String()
	}
	if got[0] != got[1] {
		t.Errorf("the shim sent\n%s\nwhere PostgreSQL sent\n%s", got[1], got[0])
	}
	return base
}

// TestWrappedExtCopyDoneThenExtWrite: an extended COPY FROM STDIN the shim wraps (no block of
// the client's) whose CopyDone is followed, before the Sync, by more of the request: Parse,
// Bind and Execute of a write, DDL, a write of the unnamed statement parsed in an earlier
// request, one that fails. PostgreSQL ignored the Sync the client sent during the data, so
// they run in the COPY's implicit transaction, all committed (or, at an error, rolled back)
// at the Sync. The shim ended the session (08P01, message type 'P' or 'B' not supported) and
// rolled the COPY back. Now the request goes on in the shim's block, walked as any: its
// writes and the COPY's rows are one dual commit, its DDL recorded, an error rolls all back.
func TestWrappedExtCopyDoneThenExtWrite(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for i, tc := range []string{"insert", "ddl", "unnamed", "named", "error", "select", "flush"} {
		t.Run(tc, func(t *testing.T) {
			commits := 1
			base := extCopySteps(t, c, s, 7000+1000*i, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
				var before [][]pgproto3.FrontendMessage
				var copy []pgproto3.FrontendMessage
				next := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}, &pgproto3.Bind{}, &pgproto3.Execute{}}
				switch tc {
				case "ddl":
					next[0] = &pgproto3.Parse{Query: fmt.Sprintf("CREATE TABLE zz%d (id int)", b)}
				case "unnamed":
					// The unnamed statement, an INSERT, was parsed before; the COPY is a named
					// one bound to the unnamed portal.
					before = [][]pgproto3.FrontendMessage{{&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}, &pgproto3.Sync{}}}
					copy = []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "cp", Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{PreparedStatement: "cp"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
					next = []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "cp"}}
				case "named":
					next = []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "ins", Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}, &pgproto3.Bind{PreparedStatement: "ins"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "ins"}}
				case "error":
					// A duplicate of the COPY's row: the COPY is rolled back with it.
					next[0] = &pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+1)}
					commits = 0
				case "select":
					next[0] = &pgproto3.Parse{Query: "SELECT count(*) FROM acct WHERE id = " + fmt.Sprint(b+1)}
				case "flush":
					next = append([]pgproto3.FrontendMessage{&pgproto3.Flush{}}, next...)
				}
				after := append([]pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{}}, next...)
				after = append(after, &pgproto3.Sync{},
					&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)})
				return before, copy, after
			})
			checkDual(t, peer.take(), commits)
			want := 2
			switch tc {
			case "error":
				want = 0
			case "ddl", "select":
				want = 1
			}
			if n := rowCount(t, c, fmt.Sprintf("id BETWEEN %d AND %d", base, base+9)); n != want {
				t.Errorf("%d rows committed, want %d", n, want)
			}
			if n := preparedCount(t, c); n != 0 {
				t.Errorf("%d transactions left prepared", n)
			}
			if tc == "ddl" {
				var recorded int
				if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM tandem.ddl WHERE stmt = $1", fmt.Sprintf("CREATE TABLE zz%d (id int)", base)).Scan(&recorded); err != nil {
					t.Fatal(err)
				}
				if recorded != 1 {
					t.Errorf("CREATE TABLE zz%d recorded %d times in tandem.ddl, want once", base, recorded)
				}
			}
		})
	}
}

// TestWrappedExtCopyDoneUnnamedAfter: after an extended COPY the shim wraps, the client parses
// a plain SELECT as the unnamed statement before the Sync (the shape the shim let through to
// the backend unwalked), then binds and executes the unnamed statement again in its next
// request. PostgreSQL runs that SELECT again; the shim must know the unnamed statement is the
// SELECT, not the one it last saw parsed: the COPY, or (named: the COPY is a named statement)
// an INSERT parsed before it, which it took for a write to commit on both databases.
func TestWrappedExtCopyDoneUnnamedAfter(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	for i, tc := range []string{"unnamed", "named"} {
		t.Run(tc, func(t *testing.T) {
			extCopySteps(t, c, s, 7000+1000*i, func(b int) ([][]pgproto3.FrontendMessage, []pgproto3.FrontendMessage, []pgproto3.FrontendMessage) {
				var before [][]pgproto3.FrontendMessage
				var copy []pgproto3.FrontendMessage
				if tc == "named" {
					before = [][]pgproto3.FrontendMessage{{&pgproto3.Parse{Query: fmt.Sprintf("INSERT INTO acct VALUES (%d, 0)", b+2)}, &pgproto3.Sync{}}}
					copy = []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "cp", Query: "COPY acct FROM STDIN"}, &pgproto3.Bind{PreparedStatement: "cp"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
				}
				return before, copy, []pgproto3.FrontendMessage{copyRow(b + 1), &pgproto3.CopyDone{},
					&pgproto3.Parse{Query: "SELECT 42"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
					&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
					&pgproto3.Query{String: fmt.Sprintf("SELECT count(*) FROM acct WHERE id BETWEEN %d AND %d", b, b+9)}}
			})
			checkDual(t, peer.take(), 1)
		})
	}
}
