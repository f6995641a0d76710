package txshim

import (
	"context"
	"testing"
	"time"
)

// TestIdleSessionTimeoutSetInCommittedTransaction: the session's idle_session_timeout after a
// commit through the shim is what PostgreSQL leaves: a SET LOCAL of the transaction ends with
// it. The dual commit's check read
// the value in force in the transaction (the SET LOCAL's) and put that back for the session.
func TestIdleSessionTimeoutSetInCommittedTransaction(t *testing.T) {
	t.Parallel()
	_, _, s := dualShim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, tc := range []struct {
		name, session, sql, want string
		fails                    bool
	}{
		{"SET LOCAL, dual commit", "0", "BEGIN; SET LOCAL idle_session_timeout = '1s'; INSERT INTO acct VALUES (1, 1); COMMIT", "0", false},
		{"SET LOCAL over a session value, dual commit", "5s", "BEGIN; SET LOCAL idle_session_timeout = '1s'; INSERT INTO acct VALUES (2, 1); COMMIT", "5s", false},
		{"SET LOCAL, plain commit (temporary table)", "0", "BEGIN; CREATE TEMP TABLE tt (a int); SET LOCAL idle_session_timeout = '1s'; INSERT INTO acct VALUES (3, 1); COMMIT", "0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_ = i
			conn := s.connect(t)
			if _, err := conn.Exec(ctx, "SET idle_session_timeout = '"+tc.session+"'"); err != nil {
				t.Fatal(err)
			}
			_, err := conn.Exec(ctx, tc.sql)
			if (err != nil) != tc.fails {
				t.Fatalf("%s: err %v, want failure %v", tc.sql, err, tc.fails)
			}
			var v string
			if err := conn.QueryRow(ctx, "SHOW idle_session_timeout").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != tc.want {
				t.Errorf("idle_session_timeout after the commit: %q, want %q (PostgreSQL's)", v, tc.want)
			}
		})
	}
}
