package txshim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rawPart is messages sent together: ended by Sync (replies read up to ReadyForQuery) or, when
// until is set, by Flush (replies read up to a message of one of those types).
type rawPart struct {
	msgs  []pgproto3.FrontendMessage
	until string
}

// repliesUntil is readReplies with errors' messages.
func (r *rawSession) repliesUntil(types string) string {
	r.t.Helper()
	return r.readReplies(types, true)
}

func (r *rawSession) runParts(parts []rawPart) string {
	var out []string
	for _, p := range parts {
		for _, m := range p.msgs {
			r.fe.Send(m)
		}
		if p.until == "" {
			r.fe.Send(&pgproto3.Sync{})
		} else {
			r.fe.Send(&pgproto3.Flush{})
		}
		if err := r.fe.Flush(); err != nil {
			r.t.Fatal(err)
		}
		until := p.until
		if until == "" {
			until = "Z"
		}
		out = append(out, r.repliesUntil(until))
	}
	return strings.Join(out, "\n")
}

// TestDriversRawCompare: extended-protocol shapes JDBC-like drivers send (portals executed with
// a row limit, resumed later; named portals across Flush), compared with PostgreSQL.
func TestDriversRawCompare(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	c.Exec(t, `CREATE TABLE rw_d (id int PRIMARY KEY); CREATE TABLE rw_s (id int PRIMARY KEY)`)
	pbe := func(q, portal string, max uint32) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{DestinationPortal: portal}, &pgproto3.Execute{Portal: portal, MaxRows: max}}
	}
	ex := func(portal string, max uint32) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: portal, MaxRows: max}}
	}
	ins := func(tb string, base int) string {
		return fmt.Sprintf("INSERT INTO rw_"+tb+" SELECT g FROM generate_series(%d, %d) g RETURNING id", base+1, base+5)
	}
	count := func(tb string, base int) rawPart {
		return rawPart{msgs: pbe(fmt.Sprintf("SELECT count(*) FROM rw_"+tb+" WHERE id BETWEEN %d AND %d", base+1, base+5), "", 0)}
	}
	cases := []struct {
		name  string
		parts func(tb string, base int) []rawPart
	}{
		{"write with a row limit, sync", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: pbe(ins(tb, b), "", 2)}, count(tb, b)}
		}},
		{"write with a row limit, resumed, sync", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: append(pbe(ins(tb, b), "p", 2), ex("p", 2)...)}, count(tb, b)}
		}},
		{"write with a row limit, flush, resumed", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: pbe(ins(tb, b), "p", 2), until: "sCE"}, {msgs: ex("p", 0)}, count(tb, b)}
		}},
		{"write suspended, flush, failing statement", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: pbe(ins(tb, b), "p", 2), until: "sCE"}, {msgs: pbe("SELECT 1/0", "", 0)}, count(tb, b)}
		}},
		{"in a block: write suspended, commit", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: pbe("BEGIN", "", 0)}, {msgs: pbe(ins(tb, b), "p", 2)}, {msgs: ex("p", 2)}, {msgs: pbe("COMMIT", "", 0)}, count(tb, b)}
		}},
		{"in a block: select portal across commit", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: pbe("BEGIN", "", 0)}, {msgs: append(pbe(ins(tb, b), "", 0), pbe("SELECT g FROM generate_series(1, 5) g", "q", 2)...)},
				{msgs: append(pbe("COMMIT", "", 0), ex("q", 2)...)}, count(tb, b)}
		}},
		{"commit then write in the same pipeline with a row limit", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: pbe("BEGIN", "", 0)}, {msgs: append(pbe("COMMIT", "", 0), pbe(ins(tb, b), "p", 2)...)}, count(tb, b)}
		}},
		{"write limited, describe portal, execute, close portal", func(tb string, b int) []rawPart {
			return []rawPart{{msgs: []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "w", Query: ins(tb, b)}, &pgproto3.Bind{PreparedStatement: "w", DestinationPortal: "p"},
				&pgproto3.Describe{ObjectType: 'P', Name: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Close{ObjectType: 'P', Name: "p"},
				&pgproto3.Close{ObjectType: 'S', Name: "w"}}}, count(tb, b)}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			direct, shim := dialRawDSN(t, c.DSN(c.Database())), dialRaw(t, s)
			direct.t, shim.t = t, t
			want := direct.runParts(tc.parts("d", 1000*i))
			got := shim.runParts(tc.parts("s", 1000*i))
			if got != want {
				t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
			}
		})
	}
}
