package txshim

import (
	"fmt"
	"strings"
	"testing"

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
	c := testCluster(t)
	c.Exec(t, installSQL)
	peer := &fakePeer{c: c, t: t}
	s := startShim(t, c, Options{Peer: peer}, ModeDual, 1)

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
