package txshim

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestExecuteOfNotifyingStatement: a transaction that ran a prepared statement which notifies
// (pg_notify), prepared with SQL PREPARE or a protocol Parse and run with SQL EXECUTE (or
// EXPLAIN ANALYZE EXECUTE), cannot be prepared; the shim did not see it, and its dual commit's
// PREPARE TRANSACTION failed with 0A000 — the client's COMMIT rolled back where PostgreSQL's
// commits. Such a transaction now commits plainly, as one that calls pg_notify itself.
func TestExecuteOfNotifyingStatement(t *testing.T) {
	t.Parallel()
	c, _, s := dualShim(t)
	cases := []struct {
		name  string
		setup func(r *rawSession)
		run   string
	}{
		{"sql prepare, execute", func(r *rawSession) {
			r.query("PREPARE n AS SELECT pg_catalog.pg_notify('tandem_ch', 'x')")
		}, "BEGIN; INSERT INTO acct VALUES (1, 0); EXECUTE n; COMMIT"},
		{"parse, execute", func(r *rawSession) {
			r.fe.SendParse(&pgproto3.Parse{Name: "pn", Query: "SELECT pg_notify('tandem_ch', 'y')"})
			if got, _ := r.sync(); got != "1Z" {
				t.Fatalf("Parse: %q", got)
			}
		}, "BEGIN; INSERT INTO acct VALUES (2, 0); EXECUTE pn; COMMIT"},
		{"prepare and explain analyze execute in one query", func(*rawSession) {},
			"PREPARE \"N2\" AS SELECT pg_notify('tandem_ch', 'z'); BEGIN; INSERT INTO acct VALUES (3, 0); EXPLAIN ANALYZE EXECUTE \"N2\"; COMMIT"},
		{"autocommit execute of a write", func(r *rawSession) {
			r.query("PREPARE w AS INSERT INTO acct SELECT 4, 0 FROM pg_notify('tandem_ch', 'w')")
		}, "EXECUTE w"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, s) // each its own session: a failed PREPARE makes the session's later commits plain
			r.t = t
			tc.setup(r)
			if got := r.query(tc.run); strings.Contains(got, "E") {
				t.Errorf("%q: %q", tc.run, got)
			}
		})
	}
	if n := rowCount(t, c, "true"); n != len(cases) {
		t.Errorf("%d rows committed, want %d", n, len(cases))
	}
	if n := preparedCount(t, c); n != 0 {
		t.Errorf("%d prepared transactions left", n)
	}
}
