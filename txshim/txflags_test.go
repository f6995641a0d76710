package txshim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestTxFlagsEndWithTransaction: what the shim noted of a transaction (it cannot be prepared: a
// LISTEN; it wrote) outlived it when it ended where no commit procedure ran — a ROLLBACK (AND
// CHAIN) passed straight through, an error, an implicit transaction ended by its request's end
// ahead of a request whose first part, sent before a Flush, passed straight through. The next
// ordinary write transaction was then taken for one that cannot be prepared and committed
// plainly (Unwrapped) instead of on both databases. Such a write is now a dual commit; a write
// in the same transaction as the LISTEN still commits plainly.
func TestTxFlagsEndWithTransaction(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)

	// A request is a simple Query, or (ext) extended-protocol parts, each a list of statements,
	// a Flush after each part but the last, which ends with Sync.
	type request struct {
		query string
		ext   [][]string
	}
	q := func(sql string) request { return request{query: sql} }
	ext := func(parts ...[]string) request { return request{ext: parts} }
	send := func(r *rawSession, req request) {
		if req.ext == nil {
			r.fe.Send(&pgproto3.Query{String: req.query})
			return
		}
		for i, part := range req.ext {
			for _, st := range part {
				r.stmt(st)
			}
			if i < len(req.ext)-1 {
				r.fe.Send(&pgproto3.Flush{})
			}
		}
		r.fe.SendSync(&pgproto3.Sync{})
	}
	const insert = "INSERT INTO acct VALUES (1, 0)"
	cases := []struct {
		name string
		// Each group of requests is sent at once (pipelined), then all their replies read.
		groups [][]request
		dual   bool // the write is a dual commit; else an unwrapped plain one
	}{
		{name: "rollback passed through", dual: true, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags")}, {q("ROLLBACK; BEGIN")}, {q(insert + "; COMMIT")}}},
		{name: "rollback in one request", dual: true, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags; ROLLBACK; BEGIN")}, {q(insert + "; COMMIT")}}},
		{name: "error, rollback passed through", dual: true, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags")}, {q("SELECT 1/0")}, {q("ROLLBACK; BEGIN")}, {q(insert + "; COMMIT")}}},
		{name: "rollback and chain", dual: true, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags")}, {q("ROLLBACK AND CHAIN")}, {q(insert + "; COMMIT")}}},
		{name: "extended rollback passed through before a flush", dual: true, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags")}, {ext([]string{"ROLLBACK", "BEGIN"}, []string{insert, "COMMIT"})}}},
		{name: "implicit, then a read before a flush", dual: true, groups: [][]request{
			{q("LISTEN tandem_flags")}, {ext([]string{"SELECT 1"}, []string{insert})}}},
		{name: "implicit, pipelined, then a read before a flush", dual: true, groups: [][]request{
			{ext([]string{"LISTEN tandem_flags"}), ext([]string{"SELECT 1"}, []string{insert})}}},
		{name: "implicit error, then a read before a flush", dual: true, groups: [][]request{
			{q("NOTIFY tandem_flags; SELECT 1/0")}, {ext([]string{"SELECT 1"}, []string{insert})}}},
		{name: "block, then a read before a flush", dual: false, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags")}, {ext([]string{"SELECT 1"}, []string{insert, "COMMIT"})}}},
		{name: "block", dual: false, groups: [][]request{
			{q("BEGIN; LISTEN tandem_flags")}, {q(insert + "; COMMIT")}}},
	}
	run := func(r *rawSession, groups [][]request) string {
		var got strings.Builder
		for _, g := range groups {
			for _, req := range g {
				send(r, req)
			}
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			for range g {
				got.WriteString(r.replies() + " | ")
			}
		}
		fmt.Fprintf(&got, "rows %d", rowCount(t, c, "id = 1"))
		c.Exec(t, "DELETE FROM acct")
		return got.String()
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := run(dialRawDSN(t, c.DSN(c.Database())), tc.groups)
			peer.take()
			before := s.Stats()
			got := run(dialRaw(t, s), tc.groups)
			if got != want {
				t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
			}
			after := s.Stats()
			calls := peer.take()
			if tc.dual {
				checkDual(t, calls, 1)
				if after.Unwrapped != before.Unwrapped || after.CommitsPlain != before.CommitsPlain {
					t.Errorf("the write committed plainly: unwrapped %d → %d, plain %d → %d",
						before.Unwrapped, after.Unwrapped, before.CommitsPlain, after.CommitsPlain)
				}
			} else if len(calls) != 0 || after.Unwrapped != before.Unwrapped+1 {
				t.Errorf("the write in the LISTEN's transaction: peer calls %v, unwrapped %d → %d; want none, one more",
					calls, before.Unwrapped, after.Unwrapped)
			}
		})
	}
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d transactions left prepared", n)
	}
}

// TestReadOnlyNoTxBlockAfterFlush: in the read-only modes, a statement that cannot run in a
// transaction block (VACUUM), sent after a Flush in an extended-protocol request, got a Sync of
// the shim's before it (to put default_transaction_read_only back on), which ended the
// implicit transaction the earlier part ran in: PostgreSQL fails such a statement in a
// pipeline (25001) and skips the rest, the shim ran it. The replies now match PostgreSQL's.
func TestReadOnlyNoTxBlockAfterFlush(t *testing.T) {
	t.Parallel()
	c := testCluster(t)
	c.Exec(t, installSQL)
	for _, mode := range []Mode{ModeReadOnly, ModeFenced} {
		s := startShim(t, c, Options{}, mode, 1)
		cases := []struct {
			name  string
			begin bool // in a transaction block opened first (the fenced site's only way in)
			parts [][]pgproto3.FrontendMessage
		}{
			{name: "read, flush, vacuum", parts: [][]pgproto3.FrontendMessage{
				pbeMsgs("", "SELECT 1"), pbeMsgs("", "VACUUM acct")}},
			{name: "set local, flush, vacuum, show", parts: [][]pgproto3.FrontendMessage{
				pbeMsgs("", "SET LOCAL work_mem = '7MB'"), append(pbeMsgs("", "VACUUM acct"), pbeMsgs("", "SHOW work_mem")...)}},
			{name: "portal, flush, vacuum, execute", parts: [][]pgproto3.FrontendMessage{
				{&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1"}},
				append(pbeMsgs("", "VACUUM acct"), &pgproto3.Execute{Portal: "p1"}, &pgproto3.Close{ObjectType: 'S', Name: "s1"})}},
			{name: "vacuum bound, flush, execute", parts: [][]pgproto3.FrontendMessage{
				{&pgproto3.Parse{Query: "VACUUM acct"}, &pgproto3.Bind{}}, {&pgproto3.Execute{}}}},
			{name: "vacuum, flush, read", parts: [][]pgproto3.FrontendMessage{
				pbeMsgs("", "VACUUM acct"), pbeMsgs("", "SELECT 1")}},
			{name: "block, rollback, flush, vacuum", begin: true, parts: [][]pgproto3.FrontendMessage{
				pbeMsgs("", "ROLLBACK"), pbeMsgs("", "VACUUM acct")}},
			{name: "block, rollback, read, flush, vacuum", begin: true, parts: [][]pgproto3.FrontendMessage{
				append(pbeMsgs("", "ROLLBACK"), pbeMsgs("", "SELECT 1")...), pbeMsgs("", "VACUUM acct")}},
		}
		run := func(r *rawSession, parts [][]pgproto3.FrontendMessage) string {
			for i, p := range parts {
				for _, m := range p {
					r.fe.Send(m)
				}
				if i < len(parts)-1 {
					r.fe.Send(&pgproto3.Flush{})
				}
			}
			r.fe.Send(&pgproto3.Sync{})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			// ParameterStatus: the shim's own SET of default_transaction_read_only.
			return strings.ReplaceAll(r.replies(), "S ", "")
		}
		for _, tc := range cases {
			if mode == ModeFenced && !tc.begin {
				continue // refused before it runs anything (57P03)
			}
			t.Run(fmt.Sprintf("%s, %s", mode, tc.name), func(t *testing.T) {
				direct := dialRawDSN(t, c.DSN(c.Database()))
				direct.query("SET default_transaction_read_only = on")
				// A fenced site's session began before it was fenced.
				s.SetMode(ModeReadOnly, 1)
				shim := dialRaw(t, s)
				shim.query("SELECT 1") // the shim's own SET of default_transaction_read_only
				if tc.begin {
					direct.query("BEGIN")
					shim.query("BEGIN")
				}
				s.SetMode(mode, 1)
				want := run(direct, tc.parts)
				got := run(shim, tc.parts)
				if got != want {
					t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
				}
			})
		}
	}

	// A client that turned default_transaction_read_only off builds no index on a read-only
	// site, however it splits the request.
	s := startShim(t, c, Options{}, ModeReadOnly, 1)
	const cic = "CREATE INDEX CONCURRENTLY acct_bal ON acct (bal)"
	for _, tc := range []struct {
		name  string
		parts [][]pgproto3.FrontendMessage
		want  string
	}{
		{name: "bound, flush, execute", want: "1 2 E(25006) Z(I)", parts: [][]pgproto3.FrontendMessage{
			{&pgproto3.Parse{Query: cic}, &pgproto3.Bind{}}, {&pgproto3.Execute{}}}},
		// The setting is put back on at the start of the request: PostgreSQL refuses the write
		// (25006) before it would the statement in the implicit transaction (25001).
		{name: "read, flush, create", want: "1 2 D[\"1\"] C(SELECT 1) 1 2 E(25006) Z(I)", parts: [][]pgproto3.FrontendMessage{
			pbeMsgs("", "SELECT 1"), pbeMsgs("", cic)}},
		// The setting put back on before the VACUUM does not hold after the client's SET and the
		// end of the transaction it ran in.
		{name: "vacuum, set off, commit, create", want: "1 2 C(VACUUM) 1 2 C(SET) 1 2 N(25P01) C(COMMIT) 1 2 E(25006) Z(I)", parts: [][]pgproto3.FrontendMessage{
			append(append(append(pbeMsgs("", "VACUUM acct"), pbeMsgs("", "SET default_transaction_read_only = off")...), pbeMsgs("", "COMMIT")...), pbeMsgs("", cic)...)}},
		{name: "bound, flush, set off, execute", want: "1 2 1 2 C(SET) E(25006) Z(I)", parts: [][]pgproto3.FrontendMessage{
			{&pgproto3.Parse{Name: "s1", Query: cic}, &pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1"}},
			append(pbeMsgs("", "SET default_transaction_read_only = off"), &pgproto3.Execute{Portal: "p1"})}},
	} {
		t.Run("client's setting off, "+tc.name, func(t *testing.T) {
			r := dialRaw(t, s)
			r.query("SET default_transaction_read_only = off")
			for i, p := range tc.parts {
				for _, m := range p {
					r.fe.Send(m)
				}
				if i < len(tc.parts)-1 {
					r.fe.Send(&pgproto3.Flush{})
				}
			}
			r.fe.Send(&pgproto3.Sync{})
			if err := r.fe.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(r.replies(), "S ", ""); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
			var idx int
			if err := c.Open(t, c.Database()).QueryRow("SELECT count(*) FROM pg_indexes WHERE indexname = 'acct_bal'").Scan(&idx); err != nil || idx != 0 {
				t.Fatalf("index built on a read-only site: %d %v", idx, err)
			}
		})
	}
}

func pbeMsgs(portal, q string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: q}, &pgproto3.Bind{DestinationPortal: portal}, &pgproto3.Execute{Portal: portal}}
}

// shimBlockCase is a request run in the dual shim and on PostgreSQL directly: a simple Query,
// or an extended request of statements (ext).
type shimBlockCase struct {
	name  string
	query string
	ext   []string
}

// compareWithPostgres runs each case through a dual shim and on PostgreSQL directly, and
// compares the replies and the rows of acct they leave.
func compareWithPostgres(t *testing.T, cases []shimBlockCase) {
	c, peer, s := dualShim(t)
	run := func(r *rawSession, query string, ext []string) string {
		if ext == nil {
			r.fe.Send(&pgproto3.Query{String: query})
		} else {
			for _, st := range ext {
				r.stmt(st)
			}
			r.fe.Send(&pgproto3.Sync{})
		}
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got := r.replies()
		got += fmt.Sprintf(", rows %d", rowCount(t, c, "true"))
		c.Exec(t, "DELETE FROM acct")
		return got
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := run(dialRawDSN(t, c.DSN(c.Database())), tc.query, tc.ext)
			got := run(dialRaw(t, s), tc.query, tc.ext)
			if got != want {
				t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
			}
			peer.take()
		})
	}
	if n := preparedCount(t, c); n != 0 {
		t.Fatalf("%d transactions left prepared", n)
	}
}

const insertOne = "INSERT INTO acct VALUES (1, 0)"

// TestChainInShimBlock: COMMIT AND CHAIN or ROLLBACK AND CHAIN after a write in an implicit
// transaction, which PostgreSQL fails (25P01) rolling the write back, ran in the block the
// shim opened for the write: COMMIT AND CHAIN committed it, and either left the client in a
// new transaction block (status T) it never began. The shim now fails them as PostgreSQL does.
func TestChainInShimBlock(t *testing.T) {
	t.Parallel()
	compareWithPostgres(t, []shimBlockCase{
		{name: "simple, commit and chain", query: insertOne + "; COMMIT AND CHAIN; SELECT 1"},
		{name: "simple, rollback and chain", query: insertOne + "; ROLLBACK AND CHAIN; SELECT 1"},
		{name: "simple, end and chain", query: insertOne + "; END AND CHAIN"},
		{name: "extended, commit and chain", ext: []string{insertOne, "COMMIT AND CHAIN", "SELECT 1"}},
		{name: "extended, rollback and chain", ext: []string{insertOne, "ROLLBACK AND CHAIN", "SELECT 1"}},
		{name: "extended, abort and chain", ext: []string{insertOne, "ABORT AND CHAIN"}},
		// In a block of the client's they run.
		{name: "block, commit and chain", query: "BEGIN; " + insertOne + "; COMMIT AND CHAIN; SELECT 1; COMMIT"},
		{name: "block, rollback and chain", ext: []string{"BEGIN", insertOne, "ROLLBACK AND CHAIN", "SELECT 1", "COMMIT"}},
	})
}

// TestWarningsInShimBlock: statements that PostgreSQL answers with a warning (25P01) in an
// implicit transaction — COMMIT and ROLLBACK, and in the extended protocol SET LOCAL, SET
// TRANSACTION and SET CONSTRAINTS — ran without it in the block the shim opens for a write
// there. The replies now match PostgreSQL's.
func TestWarningsInShimBlock(t *testing.T) {
	t.Parallel()
	compareWithPostgres(t, []shimBlockCase{
		{name: "simple, set local", query: insertOne + "; SET LOCAL work_mem = '7MB'; SHOW work_mem"},
		{name: "simple, commit", query: insertOne + "; COMMIT; SELECT 1"},
		{name: "simple, end", query: insertOne + "; END"},
		{name: "simple, rollback", query: insertOne + "; ROLLBACK; SELECT 1"},
		{name: "simple, rollback, write", query: insertOne + "; ROLLBACK; INSERT INTO acct VALUES (2, 0)"},
		{name: "simple, error, rollback", query: insertOne + "; SELECT 1/0; ROLLBACK"},
		{name: "simple, set transaction", query: insertOne + "; SET TRANSACTION READ ONLY; SELECT 1"},
		{name: "extended, set local", ext: []string{insertOne, "SET LOCAL work_mem = '7MB'", "SHOW work_mem"}},
		{name: "extended, set local, error", ext: []string{insertOne, "SELECT 1/0", "SET LOCAL work_mem = '7MB'"}},
		{name: "extended, commit", ext: []string{insertOne, "COMMIT", "SELECT 1"}},
		{name: "extended, rollback", ext: []string{insertOne, "ROLLBACK", "SELECT 1"}},
		{name: "extended, error, rollback", ext: []string{insertOne, "SELECT 1/0", "ROLLBACK"}},
		{name: "extended, rollback bound first", ext: []string{"SELECT 1", insertOne, "ROLLBACK"}},
		{name: "extended, abort, write", ext: []string{insertOne, "ABORT", "INSERT INTO acct VALUES (2, 0)"}},
		{name: "extended, set local, commit", ext: []string{insertOne, "SET LOCAL work_mem = '7MB'", "COMMIT", "SHOW work_mem"}},
		{name: "extended, set transaction", ext: []string{insertOne, "SET TRANSACTION READ ONLY", "SELECT 1"}},
		{name: "extended, set constraints", ext: []string{insertOne, " set  /* c */ constraints ALL DEFERRED", "SELECT 1"}},
		{name: "extended, set local before the write", ext: []string{"SET LOCAL work_mem = '7MB'", insertOne, "SHOW work_mem"}},
		// In a block of the client's, none.
		{name: "block", ext: []string{"BEGIN", insertOne, "SET LOCAL work_mem = '7MB'", "SET CONSTRAINTS ALL DEFERRED", "COMMIT"}},
		{name: "block, rollback", query: "BEGIN; " + insertOne + "; ROLLBACK"},
	})
}

func TestWarnsOutsideBlock(t *testing.T) {
	t.Parallel()
	for q, want := range map[string]string{
		"SET LOCAL work_mem = 1":          "SET LOCAL",
		"  set/**/transaction read only":  "SET TRANSACTION",
		"SET CONSTRAINTS ALL DEFERRED":    "SET CONSTRAINTS",
		"SET work_mem = 1":                "",
		"SET SESSION work_mem = 1":        "",
		`SET "local" = 1`:                 "",
		"SET TIME ZONE LOCAL":             "",
		"SELECT 'SET LOCAL'":              "",
		"SET SESSION CHARACTERISTICS AS ": "",
	} {
		var got string
		for _, st := range splitStatements(q) {
			if st.Kind != kindEmpty {
				got = warnsOutsideBlock(q, st)
			}
		}
		if got != want {
			t.Errorf("%q: %q, want %q", q, got, want)
		}
	}
}

// TestNotificationKeepsItsPlace: a notification PostgreSQL sends between the replies of a part
// of an extended request sent before a Flush (once the part ended its transaction) and the
// replies to the shim's BEGIN for a write after the Flush overtook the part's last replies,
// which the shim holds back until it sees which replies are its BEGIN's: the client got it
// before the CommandComplete of the ROLLBACK it came after. It now keeps its place.
func TestNotificationKeepsItsPlace(t *testing.T) {
	t.Parallel()
	c, peer, s := dualShim(t)
	run := func(r *rawSession) string {
		r.query("LISTEN tandem_order")
		r.stmt("SELECT pg_sleep(0.4)")
		r.stmt("ROLLBACK")
		r.fe.Send(&pgproto3.Flush{})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		// During the sleep another session notifies, and the write comes: PostgreSQL reads it
		// once the part ended its transaction, and delivers the notification then, before
		// running the shim's BEGIN (or, directly, the write).
		time.Sleep(100 * time.Millisecond)
		c.Exec(t, "NOTIFY tandem_order")
		r.stmt(insertOne)
		r.fe.Send(&pgproto3.Sync{})
		if err := r.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got := r.replies()
		c.Exec(t, "DELETE FROM acct")
		return got
	}
	want := run(dialRawDSN(t, c.DSN(c.Database())))
	if !strings.Contains(want, "C(ROLLBACK) A") {
		t.Fatalf("PostgreSQL does not notify right after the ROLLBACK: %s", want)
	}
	for i := 0; i < 3; i++ {
		if got := run(dialRaw(t, s)); got != want {
			t.Errorf("through the shim:\n%s\nPostgreSQL:\n%s", got, want)
		}
	}
	checkDual(t, peer.take(), 3)
}
