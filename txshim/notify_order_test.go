package txshim

import (
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestNotifyAfterCommitComplete: a notification a session sent itself in a write transaction
// whose COMMIT the shim runs as its own procedure (a COMMIT alone, inside a multi-statement
// query, or in a pipeline) reached the client before the COMMIT's CommandComplete, which the
// shim makes up once its procedure is done. PostgreSQL sends notifications just before
// ReadyForQuery; the shim now keeps that order. Each case's replies are compared with
// PostgreSQL's own, in dual and in solo mode.
func TestNotifyAfterCommitComplete(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	s := startShim(t, c, Options{Peer: &fakePeer{c: c, t: t}}, ModeDual, 1)
	q, ext := rawQuery, rawPipeline
	id := 0
	ins := func() string {
		id++
		return "INSERT INTO acct VALUES (" + strconv.Itoa(id) + ", 0)"
	}
	// Each case: requests, the last of which commits; the replies to it are compared.
	cases := []struct {
		name string
		reqs func(ch string) [][]pgproto3.FrontendMessage
	}{
		{"query: notify, commit", func(ch string) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins() + "; NOTIFY " + ch + ", 'a'; COMMIT")}
		}},
		{"query: pg_notify, commit, select", func(ch string) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins() + "; SELECT pg_notify('" + ch + "', 'b'); COMMIT; SELECT 1")}
		}},
		{"commit alone", func(ch string) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q("BEGIN; " + ins() + "; NOTIFY " + ch + ", 'c'"), q("COMMIT")}
		}},
		{"pipeline: notify, commit", func(ch string) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext("BEGIN", ins(), "NOTIFY "+ch+", 'd'", "COMMIT")}
		}},
		{"pipeline: commit, select", func(ch string) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{ext("BEGIN", ins(), "SELECT pg_notify('"+ch+"', 'e')", "COMMIT", "SELECT 1")}
		}},
		{"implicit", func(ch string) [][]pgproto3.FrontendMessage {
			return [][]pgproto3.FrontendMessage{q(ins() + "; NOTIFY " + ch + ", 'f'")}
		}},
	}
	for _, mode := range []Mode{ModeDual, ModeSolo} {
		s.SetMode(mode, 1)
		for _, tc := range cases {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				direct, shim := dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)
				shim.t, direct.t = t, t
				// Each session its own channel: neither hears the other.
				for ch, r := range map[string]*rawSession{"tandem_direct": direct, "tandem_shim": shim} {
					if got := r.query("LISTEN " + ch); got != "CZ" {
						t.Fatalf("LISTEN: %q", got)
					}
				}
				want := direct.exchange(tc.reqs("tandem_direct"))
				if got := shim.exchange(tc.reqs("tandem_shim")); got != want {
					t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
				}
			})
		}
	}
}

// rawQuery is a simple Query of sql, for a rawSession.
func rawQuery(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Query{String: sql}}
}

// rawPipeline is one extended-protocol request: Parse, Bind and Execute of each statement
// (unnamed), then Sync.
func rawPipeline(sqls ...string) []pgproto3.FrontendMessage {
	var ms []pgproto3.FrontendMessage
	for _, sql := range sqls {
		ms = append(ms, &pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{})
	}
	return append(ms, &pgproto3.Sync{})
}
